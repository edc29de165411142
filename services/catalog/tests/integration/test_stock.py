"""Stock reservations: all-or-nothing, idempotent per id, released on expiry, never oversold."""

import json
import uuid
from datetime import UTC

import eventlet
import pytest
from catalog_support import columns, grants, order_paid_event, poll
from nameko.exceptions import RemoteError
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import create_engine, text

from shared.errors import Conflict, NotFound
from shared.testing import wait_drained


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


@pytest.mark.postgres_only
def test_fifty_concurrent_priced_reservations_sell_ten_units_and_none_at_a_stale_price(catalog):
    """Orders reserves at the price its read model priced the line at: a stale price is
    refused (price_changed) even while the stock is still there, and the race never takes more
    than the stock whatever the mix."""
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=10, price_fen=1000)

    def attempt(n):
        price = 1000 if n % 2 == 0 else 999  # every other buyer priced from a stale view
        with ClusterRpcProxy(catalog.config, timeout=60) as proxy:
            try:
                proxy.catalog.reserve_stock(
                    f"priced-{n}",
                    [{"product_id": p["id"], "quantity": 1, "unit_price_fen": price}],
                )
                return ("held", price)
            except Conflict as exc:
                return (exc.details[0]["reason"], price)

    outcomes = list(eventlet.GreenPool(50).imap(attempt, range(50)))
    held = [price for outcome, price in outcomes if outcome == "held"]
    assert held == [1000] * 10  # ten units, every one at the product's price
    assert {o for o, price in outcomes if price == 999} == {"price_changed", "insufficient_stock"}
    assert stock_of(catalog, p["id"]) == 0


def order_paid(order_id: int, reservation_id: str) -> dict:
    return order_paid_event(order_id, reservation_id)


def test_order_paid_commits_the_reservation_once(catalog):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=5)
    catalog.rpc("reserve_stock", "order-1", [{"product_id": p["id"], "quantity": 2}])
    dispatch = event_dispatcher(catalog.config)
    for _ in range(3):  # redelivered: the state machine commits once
        dispatch("orders", "order_paid", order_paid(1, "order-1"))
    poll(lambda: catalog.rpc("get_product", p["id"])["units_sold"] == 2)
    assert stock_of(catalog, p["id"]) == 3
    assert catalog.rpc("commit_stock", "order-1")["status"] == "committed"
    assert catalog.rpc("get_product", p["id"])["units_sold"] == 2


def test_a_paid_release_that_overtakes_order_paid_ends_returned(catalog):
    """A full refund before shipping can reach the catalog before order_paid does: the paid
    release gives the held stock back and the late commit changes nothing."""
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=5)
    catalog.rpc("reserve_stock", "order-2", [{"product_id": p["id"], "quantity": 2}])
    assert catalog.rpc("release_stock", "order-2", paid=True)["status"] == "returned"
    assert stock_of(catalog, p["id"]) == 5
    # order_paid's handler commits with the same call: it finds the reservation returned
    assert catalog.rpc("commit_stock", "order-2")["status"] == "returned"
    assert stock_of(catalog, p["id"]) == 5
    assert catalog.rpc("get_product", p["id"])["units_sold"] == 0
    # and when the commit came first, the paid release returns the sold stock
    catalog.rpc("reserve_stock", "order-3", [{"product_id": p["id"], "quantity": 1}])
    event_dispatcher(catalog.config)("orders", "order_paid", order_paid(3, "order-3"))
    poll(lambda: catalog.rpc("get_product", p["id"])["units_sold"] == 1)
    assert catalog.rpc("release_stock", "order-3", paid=True)["status"] == "returned"
    assert stock_of(catalog, p["id"]) == 5
    assert catalog.rpc("get_product", p["id"])["units_sold"] == 0


def outbox_refusals(catalog) -> list[dict]:
    """The ``stock_commit_refused`` events the catalog wrote (its outbox)."""
    engine = create_engine(catalog.container.config["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT payload FROM outbox WHERE event_type = 'stock_commit_refused'")
            ).scalars()
            return sorted((json.loads(r)["data"] for r in rows), key=lambda d: d["order_id"])
    finally:
        engine.dispose()


def test_a_paid_order_whose_stock_cannot_be_committed_is_flagged_once(catalog, rabbit_config):
    """order_paid for a reservation that lapsed and whose stock is gone, or that never
    existed: nothing changes, orders is told (stock_commit_refused) once however often the
    event comes; the batch's other orders are committed."""
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=2)
    catalog.rpc("reserve_stock", "lapsed", [{"product_id": p["id"], "quantity": 2}])
    catalog.rpc("release_stock", "lapsed")  # the hold lapsed ...
    catalog.rpc("reserve_stock", "sold-meanwhile", [{"product_id": p["id"], "quantity": 2}])
    dispatch = event_dispatcher(catalog.config)
    for _ in range(2):  # redelivered: flagged once
        for order_id, reservation_id in (
            (11, "lapsed"),
            (12, "never-made"),
            (13, "sold-meanwhile"),
        ):
            dispatch("orders", "order_paid", order_paid(order_id, reservation_id))
    poll(lambda: len(outbox_refusals(catalog)) >= 2)
    poll(lambda: catalog.rpc("get_product", p["id"])["units_sold"] == 2)
    wait_drained(rabbit_config["vhost"])  # every copy was handled
    assert [
        (r["order_id"], r["reservation_id"], r["reason"]) for r in outbox_refusals(catalog)
    ] == [
        (11, "lapsed", "reservation_expired"),
        (12, "never-made", "reservation_not_found"),
    ]
    assert stock_of(catalog, p["id"]) == 0
    assert catalog.rpc("release_stock", "lapsed")["status"] == "released"  # as it was


def test_a_batch_of_paid_orders_commits_every_reservation_once(catalog, rabbit_config):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=100)
    q = catalog.list_product(s, title="Partner", stock=100)
    for n in range(30):
        lines = [{"product_id": p["id"], "quantity": 1}]
        if n % 3 == 0:
            lines.append({"product_id": q["id"], "quantity": 2})
        catalog.rpc("reserve_stock", f"batch-{n}", lines)
    dispatch = event_dispatcher(catalog.config)
    for n in range(30):
        dispatch("orders", "order_paid", order_paid(100 + n, f"batch-{n}"))
        dispatch("orders", "order_paid", order_paid(100 + n, f"batch-{n}"))  # a redelivery
    poll(lambda: catalog.rpc("get_product", p["id"])["units_sold"] >= 30)
    wait_drained(rabbit_config["vhost"])
    assert catalog.rpc("get_product", p["id"])["units_sold"] == 30
    assert catalog.rpc("get_product", q["id"])["units_sold"] == 20
    assert (stock_of(catalog, p["id"]), stock_of(catalog, q["id"])) == (70, 80)
    assert {catalog.rpc("commit_stock", f"batch-{n}")["status"] for n in range(30)} == {"committed"}


@pytest.mark.postgres_only
def test_fifty_two_line_reservations_racing_paid_order_batches_never_oversell(
    catalog, rabbit_config
):
    """Reservations lock their products in product-id order, and so does a batch of
    order_paid commits (units_sold of several products): racing each other they neither
    oversell nor deadlock (a deadlock would fail a reservation with an error, not a 409)."""
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=30)
    q = catalog.list_product(s, title="Partner", stock=100)
    both = [{"product_id": q["id"], "quantity": 1}, {"product_id": p["id"], "quantity": 1}]
    for n in range(20):
        catalog.rpc("reserve_stock", f"paid-{n}", both)
    dispatch = event_dispatcher(catalog.config)

    def attempt(n):
        if n % 2 == 0:  # the paid orders' commits interleave with the racing reservations
            dispatch("orders", "order_paid", order_paid(n, f"paid-{n // 2}"))
        with ClusterRpcProxy(catalog.config, timeout=60) as proxy:
            try:
                proxy.catalog.reserve_stock(f"race2-{n}", both)
                return True
            except Conflict:
                return False

    outcomes = list(eventlet.GreenPool(50).imap(attempt, range(50)))
    assert outcomes.count(True) == 10
    poll(lambda: catalog.rpc("get_product", p["id"])["units_sold"] == 20)
    wait_drained(rabbit_config["vhost"])
    assert (stock_of(catalog, p["id"]), stock_of(catalog, q["id"])) == (0, 70)
    assert catalog.rpc("get_product", q["id"])["units_sold"] == 20


# --- grants to orders' pool racing each other and reservations (issue 19) ---------------
@pytest.mark.postgres_only
def test_fifty_concurrent_grants_never_grant_more_than_the_stock(catalog):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=40)
    q = catalog.list_product(s, title="Partner", stock=1000)

    def attempt(n):
        with ClusterRpcProxy(catalog.config, timeout=60) as proxy:
            answer = proxy.catalog.grant_stock(
                f"race-{n}",
                [
                    {"product_id": q["id"], "quantity": 1},
                    {"product_id": p["id"], "quantity": 1 + n % 3},
                ],
            )
            return {i["product_id"]: i["quantity"] for i in answer["items"]}

    answers = list(eventlet.GreenPool(50).imap(attempt, range(50)))
    assert sum(a[p["id"]] for a in answers) == 40
    assert sum(a[q["id"]] for a in answers) == 50  # every grant got its other line
    assert columns(catalog, p["id"]) == (0, 40, 0)
    assert columns(catalog, q["id"]) == (950, 50, 0)
    assert sum(qty for (_g, pid), (qty, _s) in grants(catalog).items() if pid == p["id"]) == 40


@pytest.mark.postgres_only
def test_the_same_grant_sent_concurrently_grants_once(catalog):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=100)

    def attempt(_n):
        with ClusterRpcProxy(catalog.config, timeout=60) as proxy:
            return proxy.catalog.grant_stock("twin", [{"product_id": p["id"], "quantity": 20}])

    answers = list(eventlet.GreenPool(10).imap(attempt, range(10)))
    assert (
        answers
        == [
            {
                "grant_id": "twin",
                "items": [{"product_id": p["id"], "quantity": 20, "price_fen": 9900}],
            }
        ]
        * 10
    )
    assert columns(catalog, p["id"]) == (80, 20, 0)


@pytest.mark.postgres_only
def test_grants_racing_reservations_never_oversell(catalog):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=30)

    def attempt(n):
        with ClusterRpcProxy(catalog.config, timeout=60) as proxy:
            if n % 2:
                answer = proxy.catalog.grant_stock(
                    f"g-{n}", [{"product_id": p["id"], "quantity": 2}]
                )
                return ("granted", answer["items"][0]["quantity"])
            try:
                proxy.catalog.reserve_stock(f"r-{n}", [{"product_id": p["id"], "quantity": 1}])
                return ("held", 1)
            except Conflict:
                return ("held", 0)

    outcomes = list(eventlet.GreenPool(50).imap(attempt, range(50)))
    granted = sum(q for kind, q in outcomes if kind == "granted")
    held = sum(q for kind, q in outcomes if kind == "held")
    stock, allotted, _ = columns(catalog, p["id"])
    assert granted + held == 30 and stock == 0 and allotted == granted
    assert stock_of(catalog, p["id"]) == granted  # the pool's units are still for sale
