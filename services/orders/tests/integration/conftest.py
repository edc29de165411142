"""Fixtures: the real orders service and gateway; catalog, shop, share, payouts are fakes."""

from __future__ import annotations

import orders_support as sup
import pytest
import requests

from shared.run import service_class


class Env:
    """The running platform of one test, spoken to over HTTP like a client would."""

    def __init__(self, gateway, start_orders, db_url):
        self.gateway = gateway
        self.url = gateway.url
        self._start_orders = start_orders
        self.db_url = db_url
        self.orders = start_orders()

    def restart_orders(self, kill: bool = True, **overrides):
        if kill:
            self.orders.kill()
        else:
            self.orders.stop()
        self.orders = self._start_orders(**overrides)
        return self.orders

    def h(self, role=None, sub=None, **extra):
        return {**self.gateway.headers(role, sub), **extra}

    def post(self, path, json=None, role=None, sub=None, headers=None, **kw):
        return requests.post(
            self.url + path,
            json=json,
            timeout=30,
            headers={**self.h(role, sub), **(headers or {})},
            **kw,
        )

    def get(self, path, role=None, sub=None, **kw):
        return requests.get(self.url + path, headers=self.h(role, sub), timeout=30, **kw)

    def put(self, path, json=None, role=None, sub=None):
        return requests.put(self.url + path, json=json, headers=self.h(role, sub), timeout=30)

    def run_timers(self):
        resp = self.post("/api/v1/admin/orders/run-timers", role="admin")
        assert resp.status_code == 200, resp.text
        return resp.json()

    def set_clock(self, now: str | None):
        resp = self.post("/api/v1/admin/clock", json={"now": now}, role="admin")
        assert resp.status_code == 200, resp.text
        return resp.json()


def _env(gateway, container_factory, service_config, make_database, fakes):
    sup.reset_world()
    fake_config = service_config("gateway")
    for fake in fakes:
        container_factory(fake, fake_config).start()
    db_url = make_database("orders")

    def start_orders(**overrides):
        config = service_config(
            "orders", database_url=db_url, **{"ORDERS_TIMER_SECONDS": 3600, **overrides}
        )
        container = container_factory(service_class("orders"), config)
        container.start()
        return container

    sup.WORLD["orders_db_url"] = db_url  # sup.stock(): the catalog's stock + orders' pool
    return Env(gateway, start_orders, db_url)


@pytest.fixture
def env(gateway, container_factory, service_config, make_database):
    """Real orders + gateway; catalog, shop, share, payouts and identity are fakes."""
    return _env(
        gateway,
        container_factory,
        service_config,
        make_database,
        (
            sup.FakeCatalog,
            sup.FakeShop,
            sup.FakeShare,
            sup.FakePayouts,
            sup.FakeIdentity,
            sup.FakeMessages,
            sup.EventRecorder,
        ),
    )


@pytest.fixture
def env_real_catalog(gateway, container_factory, service_config, make_database, start_service):
    """Real orders, the REAL catalog and the gateway; shop, share, payouts, identity are fakes."""
    start_service("catalog")
    return _env(
        gateway,
        container_factory,
        service_config,
        make_database,
        (
            sup.FakeShop,
            sup.FakeShare,
            sup.FakePayouts,
            sup.FakeIdentity,
            sup.FakeMessages,
            sup.EventRecorder,
        ),
    )


@pytest.fixture
def catalog_world():
    """Two suppliers with a product each, an active shop 5 (keeper member 40) and its share."""
    sup.add_supplier(7, "Seven Foods", "021-7777")
    sup.add_supplier(8, "Eight Beauty", "021-8888")
    sup.add_product(101, 7, price_fen=1990, stock=10, commission_bps=1000)
    sup.add_product(202, 8, price_fen=5000, stock=5, commission_bps=1500)
    sup.add_shop(5, 40, "123456")
    sup.add_share("share-abc", "XP9K2M", 5, 101)
    return sup.WORLD
