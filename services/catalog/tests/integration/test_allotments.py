"""Stock allotments to orders' pool (issue 19): grant_stock never oversells and answers a
repeat as the first; order_paid of pool orders sells once; a refund that overtakes it puts the
units back; a stock change first reclaims orders' free pool units (orders down: 503, and the
timer applies the owed reclaim once); buyers see stock + allotted."""

import json

import eventlet
import pytest
from catalog_support import ORDERS, columns, db, grants, order_paid_event, orders_applies, poll
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ClusterRpcProxy
from test_stock import stock_of

from shared.testing import wait_drained


def reclaims(catalog) -> list[tuple[str, str]]:
    return [
        (r.id, r.status)
        for r in db(catalog, "SELECT id, status FROM stock_reclaims ORDER BY created_at")
    ]


def stock_events(catalog, pid: int) -> list[tuple[int, bool]]:
    """(stock, available) of every product_changed the catalog wrote for ``pid``."""
    rows = db(
        catalog,
        "SELECT payload FROM outbox WHERE event_type = 'product_changed' ORDER BY created_at",
    )
    data = [json.loads(r.payload)["data"] for r in rows]
    return [(d["stock"], d["available"]) for d in data if d["product_id"] == pid]


def calls() -> list[tuple]:
    """orders' reclaim calls, each once (the timer may repeat one while it is applied)."""
    seen: list[tuple] = []
    for reclaim_id, product_ids, grant_ids in ORDERS["calls"]:
        if reclaim_id not in [c[0] for c in seen]:
            seen.append((reclaim_id, product_ids, grant_ids))
    return seen


def grant(catalog, grant_id: str, *lines: tuple[int, int]) -> dict:
    return catalog.rpc(
        "grant_stock", grant_id, [{"product_id": p, "quantity": q} for p, q in lines]
    )


def order_paid(order_id: int, lines: list[tuple[int, int]], event_id: str | None = None) -> dict:
    return order_paid_event(
        order_id,
        f"order-{order_id}",
        lines,
        allotted=True,
        event_id=event_id or f"evt-pool-{order_id}",
    )


# --- grants ---------------------------------------------------------------------------------
def test_a_grant_gives_what_there_is_and_nothing_of_unavailable_products(catalog):
    s = catalog.active_supplier()
    a = catalog.list_product(s, stock=30)
    b = catalog.list_product(s, title="B", stock=5)
    delisted = catalog.list_product(s, title="C", stock=5)
    catalog.post(f"/api/v1/products/{delisted['id']}/delist", headers=catalog.auth(s))
    answer = grant(catalog, "g1", (a["id"], 20), (b["id"], 20), (delisted["id"], 2), (999999, 3))
    assert answer == {
        "grant_id": "g1",
        "items": [
            {"product_id": a["id"], "quantity": 20, "price_fen": 9900},
            {"product_id": b["id"], "quantity": 5, "price_fen": 9900},
            {"product_id": delisted["id"], "quantity": 0, "price_fen": 9900},
            {"product_id": 999999, "quantity": 0, "price_fen": None},
        ],
    }
    assert columns(catalog, a["id"]) == (10, 20, 0)
    assert columns(catalog, b["id"]) == (0, 5, 0)
    # the units in orders' pool are for sale: buyers see them
    assert stock_of(catalog, a["id"]) == 30 and stock_of(catalog, b["id"]) == 5
    assert catalog.rpc("get_product", b["id"])["available"] is True
    listed = {p["id"] for p in catalog.get("/api/v1/products").json()["items"]}
    assert {a["id"], b["id"]} <= listed
    assert stock_events(catalog, b["id"]) == []  # what buyers see did not change
    # a repeat (a retry after a lost reply) answers the recorded grant and grants nothing
    assert grant(catalog, "g1", (a["id"], 20), (b["id"], 20), (delisted["id"], 2)) == {
        "grant_id": "g1",
        "items": answer["items"][:3],
    }
    assert columns(catalog, a["id"]) == (10, 20, 0)


def test_a_suspended_suppliers_products_are_granted_nothing(catalog):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=30)
    resp = catalog.post(
        f"/api/v1/admin/suppliers/{s['id']}/suspend", {"reason": "x"}, catalog.gw.headers("admin")
    )
    assert resp.status_code == 200, resp.text
    assert grant(catalog, "g1", (p["id"], 2))["items"] == [
        {"product_id": p["id"], "quantity": 0, "price_fen": 9900}
    ]
    assert columns(catalog, p["id"]) == (30, 0, 0)


def test_bad_grant_payloads_are_refused_with_422(catalog):
    for grant_id, items in (
        ("", [{"product_id": 1, "quantity": 1}]),
        ("g" * 65, [{"product_id": 1, "quantity": 1}]),
        ("g", []),
        ("g", [{"product_id": 1, "quantity": 0}]),
        ("g", [{"product_id": 1, "quantity": 10001}]),
        ("g", [{"product_id": "1", "quantity": 1}]),
        ("g", [{"product_id": n + 1, "quantity": 1} for n in range(101)]),
    ):
        with pytest.raises(Exception) as exc:
            catalog.rpc("grant_stock", grant_id, items)
        assert getattr(exc.value, "status", None) == 422, (grant_id, items)


# --- sales and refunds of pool units --------------------------------------------------------
def test_order_paid_of_pool_orders_sells_once(catalog, rabbit_config):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=10)
    q = catalog.list_product(s, title="Partner", stock=10)
    grant(catalog, "g1", (p["id"], 10), (q["id"], 5))
    dispatch = event_dispatcher(catalog.config)
    for n in range(3):
        lines = [(p["id"], 1), (p["id"], 1), (q["id"], 1)] if n == 0 else [(p["id"], 3)]
        dispatch("orders", "order_paid", order_paid(n + 1, lines))
        dispatch("orders", "order_paid", order_paid(n + 1, lines))  # a redelivery
        # the same order once more under another event id: its reservation is recorded once
        dispatch("orders", "order_paid", order_paid(n + 1, lines, event_id=f"again-{n}"))
    poll(lambda: columns(catalog, p["id"])[2] == 8)
    wait_drained(rabbit_config["vhost"])
    assert columns(catalog, p["id"]) == (0, 2, 8)
    assert columns(catalog, q["id"]) == (5, 4, 1)
    assert stock_of(catalog, p["id"]) == 2
    assert [r.status for r in db(catalog, "SELECT status FROM reservations")] == ["committed"] * 3
    refused = "SELECT count(*) AS n FROM outbox WHERE event_type = 'stock_commit_refused'"
    assert db(catalog, refused)[0].n == 0


def test_selling_the_last_pool_units_is_announced_once(catalog, rabbit_config):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=3)
    grant(catalog, "g1", (p["id"], 3))
    assert columns(catalog, p["id"]) == (0, 3, 0)
    assert stock_events(catalog, p["id"]) == []  # 0 at the catalog, 3 on sale at orders
    dispatch = event_dispatcher(catalog.config)
    dispatch("orders", "order_paid", order_paid(1, [(p["id"], 2)]))
    poll(lambda: columns(catalog, p["id"])[2] == 2)
    dispatch("orders", "order_paid", order_paid(2, [(p["id"], 1)]))
    poll(lambda: columns(catalog, p["id"])[2] == 3)
    wait_drained(rabbit_config["vhost"])
    assert stock_events(catalog, p["id"]) == [(0, False)]
    assert catalog.rpc("get_product", p["id"])["available"] is False


def test_a_refund_that_overtakes_order_paid_puts_the_units_back_and_the_event_changes_nothing(
    catalog, rabbit_config
):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=10)
    grant(catalog, "g1", (p["id"], 6))
    items = [{"product_id": p["id"], "quantity": 2}]
    first = catalog.rpc("release_stock", "order-1", paid=True, items=items)
    assert first["status"] == "returned" and first["items"] == items
    assert catalog.rpc("release_stock", "order-1", paid=True, items=items) == first
    assert columns(catalog, p["id"]) == (6, 4, 0)
    event_dispatcher(catalog.config)("orders", "order_paid", order_paid(1, [(p["id"], 2)]))
    wait_drained(rabbit_config["vhost"])
    assert columns(catalog, p["id"]) == (6, 4, 0)
    assert stock_of(catalog, p["id"]) == 10
    with pytest.raises(Exception) as exc:
        catalog.rpc("release_stock", "order-9", paid=True, items=[{"product_id": 1}])
    assert getattr(exc.value, "status", None) == 422


# --- reclaims before a stock change ---------------------------------------------------------
def test_a_suppliers_new_stock_first_reclaims_the_free_pool_units(catalog, orders):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=30)
    other = catalog.list_product(s, title="Other", stock=30)
    orders_applies(grant(catalog, "g1", (p["id"], 10)))
    grant(catalog, "g2", (p["id"], 5), (other["id"], 4))  # its reply is still in flight
    ORDERS["pool"][p["id"]] -= 3  # three units held by an unpaid order at orders
    resp = catalog.patch(f"/api/v1/products/{p['id']}", {"stock": 12}, catalog.auth(s))
    assert resp.status_code == 200, resp.text
    assert calls() == [(reclaims(catalog)[0][0], [p["id"]], ["g1", "g2"])]
    # the 7 free units came back, g2 was revoked (every line), the held 3 stay allotted
    assert columns(catalog, p["id"]) == (12, 3, 0)
    assert columns(catalog, other["id"]) == (30, 0, 0)
    assert grants(catalog) == {
        ("g1", p["id"]): (10, "settled"),
        ("g2", p["id"]): (5, "revoked"),
        ("g2", other["id"]): (4, "revoked"),
    }
    assert resp.json()["stock"] == 15 and stock_of(catalog, p["id"]) == 15
    assert [status for _id, status in reclaims(catalog)] == ["applied"]
    # the held units are still out at orders: the next change reclaims again (nothing free)
    resp = catalog.patch(f"/api/v1/products/{p['id']}", {"stock": 20}, catalog.auth(s))
    assert resp.status_code == 200 and columns(catalog, p["id"]) == (20, 3, 0)
    assert len(calls()) == 2
    # a change that is not the stock, or of a product with nothing out at orders: no call
    catalog.patch(f"/api/v1/products/{p['id']}", {"title": "Renamed"}, catalog.auth(s))
    catalog.patch(f"/api/v1/products/{other['id']}", {"stock": 7}, catalog.auth(s))
    assert len(calls()) == 2 and columns(catalog, other["id"]) == (7, 0, 0)


def test_delisting_and_suspending_reclaim_the_pool_first(catalog, orders):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=30)
    q = catalog.list_product(s, title="Q", stock=30)
    orders_applies(grant(catalog, "g1", (p["id"], 10), (q["id"], 10)))
    resp = catalog.post(f"/api/v1/products/{p['id']}/delist", headers=catalog.auth(s))
    assert resp.status_code == 200, resp.text
    assert columns(catalog, p["id"]) == (30, 0, 0)
    # g1 is settled (orders applied it); q's units stay in the pool until q changes
    assert columns(catalog, q["id"]) == (20, 10, 0)
    assert grant(catalog, "g2", (p["id"], 1))["items"][0]["quantity"] == 0
    orders_applies(grant(catalog, "g3", (q["id"], 5)))
    resp = catalog.post(
        f"/api/v1/admin/suppliers/{s['id']}/suspend", {"reason": "x"}, catalog.gw.headers("admin")
    )
    assert resp.status_code == 200, resp.text
    assert columns(catalog, q["id"]) == (30, 0, 0)
    assert ORDERS["pool"] == {}
    assert calls()[-1][1:] == ([q["id"]], ["g3"])
    assert catalog.rpc("get_product", q["id"])["available"] is False


def test_orders_down_answers_503_and_the_timer_applies_the_owed_reclaim_once(
    catalog, container_factory
):
    from catalog_support import FakeOrders, reset_orders

    reset_orders()
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=30)
    orders_applies(grant(catalog, "g1", (p["id"], 10)))
    resp = catalog.patch(f"/api/v1/products/{p['id']}", {"stock": 12}, catalog.auth(s))
    assert resp.status_code == 503, resp.text
    # nothing of the update happened; the reclaim is owed
    assert columns(catalog, p["id"]) == (20, 10, 0) and stock_of(catalog, p["id"]) == 30
    [(reclaim_id, status)] = reclaims(catalog)
    assert status == "owed"
    container_factory(FakeOrders, {"AMQP_URI": catalog.config["AMQP_URI"]}).start()
    poll(lambda: reclaims(catalog) == [(reclaim_id, "applied")])
    assert columns(catalog, p["id"]) == (30, 0, 0)  # the pool's 10 came back, once
    assert {call[0] for call in ORDERS["calls"]} == {reclaim_id}
    assert grants(catalog) == {("g1", p["id"]): (10, "settled")}
    # the supplier's retry now goes through, with nothing left out at orders: no call
    made = len(ORDERS["calls"])
    resp = catalog.patch(f"/api/v1/products/{p['id']}", {"stock": 12}, catalog.auth(s))
    assert resp.status_code == 200 and columns(catalog, p["id"]) == (12, 0, 0)
    assert len(ORDERS["calls"]) == made
    reset_orders()


@pytest.mark.postgres_only
def test_grants_racing_stock_changes_lose_no_unit(catalog, orders):
    """Supplier stock changes (each reclaiming orders' pool first) racing 40 grants whose
    replies orders applies as they come (or discards, revoked): at the end every unit the
    catalog counts as allotted is in orders' pool, and the last change's stock stands."""
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=100)
    orders_applies(grant(catalog, "before", (p["id"], 10)))  # the first change must reclaim

    def attempt(n):
        if n % 10 == 5:
            resp = catalog.patch(f"/api/v1/products/{p['id']}", {"stock": 60}, catalog.auth(s))
            return resp.status_code
        with ClusterRpcProxy(catalog.config, timeout=60) as proxy:
            answer = proxy.catalog.grant_stock(
                f"g-{n}", [{"product_id": p["id"], "quantity": 1 + n % 4}]
            )
        orders_applies(answer)
        return 200

    assert set(eventlet.GreenPool(50).imap(attempt, range(45))) == {200}
    stock, allotted, _ = columns(catalog, p["id"])
    assert allotted == ORDERS["pool"].get(p["id"], 0)
    assert calls()  # the changes did reclaim
    # the catalog's grant statuses agree with what orders did with each reply
    for (grant_id, _pid), (_qty, status) in grants(catalog).items():
        revoked = grant_id in ORDERS["revoked"]
        assert (status == "revoked") == revoked
        assert revoked or grant_id in ORDERS["applied"]
    assert stock >= 0


@pytest.mark.postgres_only
def test_a_batch_mixing_pool_orders_and_reservations_racing_reservations_never_deadlocks(
    catalog, rabbit_config
):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=200)
    q = catalog.list_product(s, title="Partner", stock=200)
    grant(catalog, "pool", (p["id"], 50), (q["id"], 50))
    both = [{"product_id": q["id"], "quantity": 1}, {"product_id": p["id"], "quantity": 1}]
    for n in range(20):
        catalog.rpc("reserve_stock", f"held-{n}", both)
    dispatch = event_dispatcher(catalog.config)

    def attempt(n):
        if n % 2 == 0:  # pool orders (q before p) and reserved orders, in the same batches
            dispatch("orders", "order_paid", order_paid(1000 + n, [(q["id"], 1), (p["id"], 1)]))
            dispatch("orders", "order_paid", reserved_paid(n, f"held-{n // 2}"))
        with ClusterRpcProxy(catalog.config, timeout=60) as proxy:
            proxy.catalog.reserve_stock(f"race-{n}", both)
        return True

    assert all(eventlet.GreenPool(40).imap(attempt, range(40)))
    poll(lambda: columns(catalog, p["id"])[2] == 40)
    wait_drained(rabbit_config["vhost"])
    # p: 200 - 50 granted - 20 held - 40 raced; 20 pool units sold, 20 reserved ones
    assert columns(catalog, p["id"]) == (90, 30, 40)
    assert columns(catalog, q["id"]) == (90, 30, 40)


def reserved_paid(order_id: int, reservation_id: str) -> dict:
    event = order_paid(order_id, [])
    event["id"] = f"evt-{reservation_id}"
    event["data"].update(reservation_id=reservation_id, allotted=False)
    return event
