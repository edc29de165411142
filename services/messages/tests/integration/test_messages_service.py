"""The real messages service on real RabbitMQ and PostgreSQL (orders, catalog and shop are
fakes): a thread through the gateway's RPCs, escalation by the platform clock, and an event
delivered twice that notifies once."""

from __future__ import annotations

import pytest
from nameko.rpc import rpc
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import create_engine, text

from shared.db import envelope
from shared.errors import NotFound
from shared.testing import wait_drained, wait_for

BUYER, KEEPER, SUPPLIER, SHOP = 41, 40, 7, 5
ORDER = {
    "order_id": 1234,
    "status": "paid",
    "buyer_id": BUYER,
    "supplier_id": SUPPLIER,
    "shop_id": SHOP,
    "shop_number": "123456",
    "share_id": None,
    "keeper_member_id": KEEPER,
    "items": [{"product_id": 101, "title": "滇红茶", "price_paid_fen": 12_800}],
}


class FakeOrders:
    name = "orders"

    @rpc
    def order_parties(self, order_id):
        if int(order_id) != ORDER["order_id"]:
            raise NotFound("no order", code="order_not_found")
        return ORDER

    @rpc
    def set_clock(self, now):
        return {"now": now}


class FakeCatalog:
    name = "catalog"

    @rpc
    def get_products(self, ids):
        return [{"id": 101, "title": "滇红茶", "faq": [{"q": "保质期", "a": "18个月"}]}]

    @rpc
    def get_supplier_contact(self, supplier_id):
        return {"supplier_id": SUPPLIER, "name": "Seven", "phone": "02177770000"}


class FakeShop:
    name = "shop"

    @rpc
    def get_keeper_contact(self, shop_id):
        return {"member_id": KEEPER, "phone": "13900000040"}

    @rpc
    def get_member(self, member_id):
        return {"id": int(member_id), "phone": f"139000000{int(member_id)}"}

    @rpc
    def get_shop(self, shop_id):
        return {"id": SHOP, "shop_number": "123456", "display_name": "阿花小铺"}


def start(container_factory, service_config, make_database):
    fake_config = service_config("gateway")
    for fake in (FakeOrders, FakeCatalog, FakeShop):
        container_factory(fake, fake_config).start()
    db_url = make_database("messages")
    config = service_config(
        "messages", database_url=db_url, MESSAGES_TIMER_SECONDS=0.2, XIAOPU_TEST_MODE="1"
    )
    from messages.service import MessagesService

    container_factory(MessagesService, config).start()
    return config, db_url


def sandbox(db_url: str) -> list[tuple[str, str]]:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text('SELECT "to", template FROM sandbox_messages ORDER BY id')).all()
    engine.dispose()
    return [(r[0], r[1]) for r in rows]


def test_a_thread_escalates_by_the_platform_clock_and_outsiders_get_404(
    container_factory, service_config, make_database
):
    config, _ = start(container_factory, service_config, make_database)
    buyer = {"role": "member", "id": str(BUYER)}
    with ServiceRpcProxy("messages", config) as messages:
        asked = messages.open_order_thread(1234, buyer, {"topic": "product", "text": "保质期?"})
        assert asked["routed_to"] == "keeper"
        view = messages.get_thread(asked["id"], {"role": "member", "id": str(KEEPER)})
        assert view["product_facts"]["faq"][0]["a"] == "18个月"
        assert view["suggested_answers"][0]["a"] == "18个月"
        for outsider in ({"role": "member", "id": "99"}, {"role": "supplier", "id": "8"}):
            with pytest.raises(NotFound, match="not found"):
                messages.get_thread(asked["id"], outsider)
        messages.set_clock("2099-01-01T00:00:00Z")
        try:
            wait_for(lambda: messages.get_thread(asked["id"], buyer)["status"] == "escalated")
        finally:
            messages.set_clock(None)
        queue = messages.list_threads({"role": "admin", "id": "admin"}, {"status": "escalated"})
        assert [t["id"] for t in queue["items"]] == [asked["id"]]


def test_an_event_delivered_twice_notifies_once(
    container_factory, service_config, make_database, rabbit_config
):
    config, db_url = start(container_factory, service_config, make_database)
    paid = envelope(
        "order_paid",
        {
            "order_id": 1234,
            "buyer_id": BUYER,
            "supplier_id": SUPPLIER,
            "shop_id": SHOP,
            "share_id": None,
            "self_referral": False,
            "paid_fen": 12_800,
            "paid_at": "2030-01-01T00:00:00Z",
            "lines": [
                {
                    "product_id": 101,
                    "title": "滇红茶",
                    "quantity": 1,
                    "unit_price_fen": 12_800,
                    "amount_fen": 12_800,
                    "commission_bps": 2_000,
                }
            ],
        },
        "orders",
    )
    dispatch = event_dispatcher(config)
    dispatch("orders", "order_paid", paid)
    expected = [("13900000040", "new_order"), ("02177770000", "order_to_ship")]
    wait_for(lambda: sorted(sandbox(db_url)) == sorted(expected))
    dispatch("orders", "order_paid", paid)  # redelivered: the same event id
    wait_drained(rabbit_config["vhost"], ignore=lambda q: q.endswith((".dead", ".retry")))
    with ServiceRpcProxy("messages", config) as messages:
        messages.run_timers()
    assert sorted(sandbox(db_url)) == sorted(expected)
