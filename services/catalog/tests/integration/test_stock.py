"""Stock reservations: all-or-nothing, idempotent per id, released on expiry, never oversold."""

import uuid
from datetime import UTC

import eventlet
import pytest
from catalog_support import poll
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from shared.errors import Conflict, NotFound


def rid():
    return str(uuid.uuid4())


def stock_of(catalog, product_id):
    return catalog.rpc("get_product", product_id)["stock"]


def test_a_reservation_takes_every_line_or_none(catalog):
    s = catalog.active_supplier()
    a, b = catalog.list_product(s, stock=5), catalog.list_product(s, title="B", stock=1)
    with pytest.raises(Conflict) as exc:
        catalog.rpc(
            "reserve_stock",
            rid(),
            [{"product_id": a["id"], "quantity": 2}, {"product_id": b["id"], "quantity": 2}],
        )
    assert exc.value.details == [
        {"product_id": b["id"], "requested": 2, "available": 1, "reason": "insufficient_stock"}
    ]
    assert (stock_of(catalog, a["id"]), stock_of(catalog, b["id"])) == (5, 1)

    ok = catalog.rpc(
        "reserve_stock",
        "order-1",
        [{"product_id": a["id"], "quantity": 2}, {"product_id": b["id"], "quantity": 1}],
    )
    assert ok["status"] == "held"
    assert (stock_of(catalog, a["id"]), stock_of(catalog, b["id"])) == (3, 0)


def test_reserving_twice_with_the_same_id_takes_stock_once(catalog):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=5)
    first = catalog.rpc("reserve_stock", "order-7", [{"product_id": p["id"], "quantity": 2}])
    again = catalog.rpc("reserve_stock", "order-7", [{"product_id": p["id"], "quantity": 2}])
    assert first == again
    assert stock_of(catalog, p["id"]) == 3


def test_release_returns_stock_once_and_a_refund_before_shipping_returns_paid_stock(catalog):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=5)
    catalog.rpc("reserve_stock", "r1", [{"product_id": p["id"], "quantity": 2}])
    catalog.rpc("reserve_stock", "r2", [{"product_id": p["id"], "quantity": 1}])
    assert catalog.rpc("release_stock", "r1")["status"] == "released"
    assert catalog.rpc("release_stock", "r1")["status"] == "released"
    assert catalog.rpc("release_stock", "never-made")["status"] == "unknown"
    assert stock_of(catalog, p["id"]) == 4
    assert catalog.rpc("commit_stock", "r2")["status"] == "committed"
    assert catalog.rpc("commit_stock", "r2")["status"] == "committed"
    assert stock_of(catalog, p["id"]) == 4
    # the paid order is fully refunded before shipping: its stock comes back, once
    assert catalog.rpc("release_stock", "r2")["status"] == "returned"
    assert catalog.rpc("release_stock", "r2")["status"] == "returned"
    assert catalog.rpc("commit_stock", "r2")["status"] == "returned"
    assert stock_of(catalog, p["id"]) == 5
    with pytest.raises(NotFound):
        catalog.rpc("commit_stock", "never-made")


def test_delisted_or_unknown_products_cannot_be_reserved(catalog):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=5)
    catalog.post(f"/api/v1/products/{p['id']}/delist", headers=catalog.auth(s))
    with pytest.raises(Conflict) as exc:
        catalog.rpc(
            "reserve_stock",
            rid(),
            [{"product_id": p["id"], "quantity": 1}, {"product_id": 999999, "quantity": 1}],
        )
    assert [d["reason"] for d in exc.value.details] == ["unavailable", "not_found"]


def test_an_unpaid_reservation_gives_its_stock_back_after_the_ttl(catalog):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=3)
    catalog.rpc("reserve_stock", "unpaid", [{"product_id": p["id"], "quantity": 3}])
    assert stock_of(catalog, p["id"]) == 0
    assert catalog.rpc("expire_reservations") == {"released": []}  # not yet expired
    from datetime import datetime, timedelta

    later = datetime.now(UTC) + timedelta(minutes=36)
    catalog.rpc("set_clock", later.isoformat())
    poll(lambda: stock_of(catalog, p["id"]) == 3)  # the sweep timer released it
    assert catalog.rpc("get_product", p["id"])["available"] is True


def test_paying_after_expiry_retakes_the_stock_if_it_is_still_there(catalog):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=2)
    catalog.rpc("reserve_stock", "late", [{"product_id": p["id"], "quantity": 2}])
    catalog.rpc("release_stock", "late")
    assert catalog.rpc("commit_stock", "late")["status"] == "committed"
    assert stock_of(catalog, p["id"]) == 0


def test_bad_reservation_payloads_are_refused(catalog):
    with pytest.raises(Exception) as exc:
        catalog.rpc("reserve_stock", "x", [{"product_id": 1, "quantity": 0}])
    assert not isinstance(exc.value, RemoteError)
    assert getattr(exc.value, "status", None) == 422


@pytest.mark.postgres_only
def test_fifty_concurrent_reservations_never_take_more_than_ten_units(catalog):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=10)
    q = catalog.list_product(s, title="Partner", stock=100)

    def attempt(n):
        with ClusterRpcProxy(catalog.config, timeout=60) as proxy:
            try:
                proxy.catalog.reserve_stock(
                    f"race-{n}",
                    [
                        {"product_id": q["id"], "quantity": 1},
                        {"product_id": p["id"], "quantity": 1},
                    ],
                )
                return True
            except Conflict:
                return False

    pool = eventlet.GreenPool(50)
    outcomes = list(pool.imap(attempt, range(50)))
    assert outcomes.count(True) == 10
    assert stock_of(catalog, p["id"]) == 0
    assert stock_of(catalog, q["id"]) == 90  # the losers took nothing from the other line


@pytest.mark.postgres_only
def test_concurrent_multi_unit_reservations_never_oversell(catalog):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=10)

    def attempt(n):
        with ClusterRpcProxy(catalog.config, timeout=60) as proxy:
            try:
                return proxy.catalog.reserve_stock(
                    f"multi-{n}", [{"product_id": p["id"], "quantity": 1 + n % 3}]
                )["items"][0]["quantity"]
            except Conflict:
                return 0

    taken = sum(eventlet.GreenPool(50).imap(attempt, range(50)))
    assert taken + stock_of(catalog, p["id"]) == 10
    assert stock_of(catalog, p["id"]) >= 0


@pytest.mark.postgres_only
def test_the_same_reservation_sent_concurrently_takes_stock_once(catalog):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=10)

    def attempt(_n):
        with ClusterRpcProxy(catalog.config, timeout=60) as proxy:
            return proxy.catalog.reserve_stock(
                "retry-storm", [{"product_id": p["id"], "quantity": 3}]
            )["status"]

    outcomes = list(eventlet.GreenPool(10).imap(attempt, range(10)))
    assert outcomes == ["held"] * 10
    assert stock_of(catalog, p["id"]) == 7
