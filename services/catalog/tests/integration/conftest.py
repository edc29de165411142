"""The catalog fixture: the real catalog service behind the real gateway."""

import pytest
from catalog_support import Catalog, FakeOrders, reset_orders


@pytest.fixture
def catalog(gateway, start_service):
    container = start_service(
        "catalog", RULES={"reservation_sweep_seconds": 0.3, "reclaim_retry_seconds": 0.3}
    )
    return Catalog(gateway, container)


@pytest.fixture
def orders(catalog, container_factory):
    """A fake orders service answering the catalog's ``reclaim_stock`` (``FakeOrders``); its
    pool is ``catalog_support.ORDERS``."""
    reset_orders()
    container = container_factory(FakeOrders, {"AMQP_URI": catalog.config["AMQP_URI"]})
    container.start()
    yield container
    reset_orders()
