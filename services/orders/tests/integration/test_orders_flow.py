"""Orders through the gateway with the real orders service (catalog, shop, share are fakes)."""

from __future__ import annotations

import json
import os

import orders_support as sup
from sqlalchemy import create_engine, text

from orders.payments import SIGNATURE_HEADER, SandboxProvider

BUYER = 41
ADDRESS = {"name": "张三", "phone": "13812345678", "line": "上海市黄浦区某路1号"}
# this test run's random secret (the root conftest sets it; no secret is built in)
SANDBOX = SandboxProvider(os.environ["PAYMENT_SANDBOX_SECRET"])


def checkout(env, items, buyer=BUYER, **extra):
    body = {
        "items": [{"product_id": p, "quantity": q} for p, q in items],
        "address": ADDRESS,
        **extra,
    }
    return env.post("/api/v1/orders", json=body, role="member", sub=buyer)


def callback(env, order_id, amount_fen, payment_id=None, signature=None, times=1):
    raw, sig = SANDBOX.build_callback(order_id, amount_fen, payment_id)
    return SandboxProvider.deliver(
        env.url + "/api/v1/payments/callback",
        raw,
        sig if signature is None else signature,
        times=times,
    )


def test_buyer_orders_two_suppliers_through_a_share_and_the_whole_life_runs(env, catalog_world):
    # a buyer opens a share and orders two products from two suppliers
    resp = checkout(env, [(101, 2), (202, 1)], share_code="复制这段 XP9K2M 打开小铺")
    assert resp.status_code == 201, resp.text
    orders = {o["supplier_id"]: o for o in resp.json()["orders"]}
    assert set(orders) == {7, 8}
    for o in orders.values():
        assert o["status"] == "created"
        assert (o["shop_id"], o["share_id"]) == (5, "share-abc")
        assert o["self_referral"] is False
    assert orders[7]["total_fen"] == 2 * 1990 and orders[8]["total_fen"] == 5000
    assert sup.stock(101) == 8 and sup.stock(202) == 4  # taken from orders' pool
    calls = [c[0] for c in sup.WORLD["calls"]]
    assert calls.count("get_products") == 1  # one batch RPC to validate the whole cart
    # the pool was empty: ONE grant for both products (at least stock_grant_units each, at
    # most what the catalog has); no reservation per order
    assert calls.count("grant_stock") == 1 and "reserve_stock" not in calls
    assert sup.WORLD["allotted"] == {101: 10, 202: 5} and sup.WORLD["stock"] == {101: 0, 202: 0}

    # an unsigned or forged callback changes nothing
    o7, o8 = orders[7], orders[8]
    raw, _ = SANDBOX.build_callback(o7["id"], o7["total_fen"])
    import requests

    unsigned = requests.post(
        env.url + "/api/v1/payments/callback",
        data=raw,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert unsigned.status_code == 401
    forged = callback(env, o7["id"], o7["total_fen"], signature="00" * 32)[0]
    assert forged.status_code == 401
    assert (
        env.get(f"/api/v1/orders/{o7['id']}", role="member", sub=BUYER).json()["status"]
        == "created"
    )

    # a signed callback delivered twice pays once, publishes one order_paid
    first, second = callback(env, o7["id"], o7["total_fen"], payment_id="pay-7", times=2)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "paid"
    assert second.status_code == 200 and second.json().get("duplicate") is True
    paid = env.post(f"/api/v1/orders/{o8['id']}/pay", role="member", sub=BUYER)
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    again = env.post(f"/api/v1/orders/{o8['id']}/pay", role="member", sub=BUYER)
    assert again.status_code == 200 and again.json()["status"] == "paid"
    sup.wait_for(lambda: len(sup.events("order_paid")) >= 2)
    paid_events = sup.events("order_paid")
    assert sorted(e["data"]["order_id"] for e in paid_events) == sorted([o7["id"], o8["id"]])
    ev7 = next(e["data"] for e in paid_events if e["data"]["order_id"] == o7["id"])
    assert ev7["shop_id"] == 5 and ev7["share_id"] == "share-abc"
    assert ev7["paid_fen"] == 3980 and ev7["lines"][0]["commission_bps"] == 1000
    sup.wait_for(lambda: sup.WORLD["reservations"][f"order-{o7['id']}"]["state"] == "committed")
    assert sup.WORLD["reservations"][f"order-{o8['id']}"]["state"] == "committed"

    # contacts and questions moved to the messages service (services/messages/tests)
    # the suppliers ship their own orders only
    wrong = env.post(
        f"/api/v1/orders/{o7['id']}/ship",
        json={"carrier": "SF", "tracking_no": "1"},
        role="supplier",
        sub=8,
    )
    assert wrong.status_code == 404  # another supplier's order: as if it did not exist
    assert wrong.json()["error"]["code"] == "order_not_found"
    for o in (o7, o8):
        r = env.post(
            f"/api/v1/orders/{o['id']}/ship",
            json={"carrier": "SF", "tracking_no": f"SF{o['id']}"},
            role="supplier",
            sub=o["supplier_id"],
        )
        assert r.status_code == 200 and r.json()["status"] == "shipped", r.text
    # the buyer confirms; a partial refund is approved by the supplier
    r = env.post(f"/api/v1/orders/{o7['id']}/confirm", role="member", sub=BUYER)
    assert r.status_code == 200 and r.json()["status"] == "received"
    too_much = env.post(
        f"/api/v1/orders/{o7['id']}/refunds",
        json={"amount_fen": 3981, "reason": "x"},
        role="member",
        sub=BUYER,
    )
    assert too_much.status_code == 422
    refund = env.post(
        f"/api/v1/orders/{o7['id']}/refunds",
        json={"amount_fen": 1990, "reason": "one was broken"},
        role="member",
        sub=BUYER,
    )
    assert refund.status_code == 201 and refund.json()["status"] == "requested"
    rid = refund.json()["id"]
    other = env.post(f"/api/v1/refunds/{rid}/approve", role="supplier", sub=8)
    assert other.status_code == 404 and other.json()["error"]["code"] == "refund_not_found"
    approved = env.post(f"/api/v1/refunds/{rid}/approve", role="supplier", sub=7)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    again = env.post(f"/api/v1/refunds/{rid}/approve", role="supplier", sub=7)
    assert again.status_code == 409
    detail = env.get(f"/api/v1/orders/{o7['id']}", role="member", sub=BUYER).json()
    assert detail["status"] == "received" and detail["refunded_fen"] == 1990
    assert [h["to"] for h in detail["history"] if h["from"] != h["to"]] == [
        "created",
        "paid",
        "shipped",
        "received",
    ]
    sup.wait_for(lambda: sup.events("order_refunded"))
    refunded = sup.events("order_refunded")[0]["data"]
    assert (refunded["amount_fen"], refunded["refunded_total_fen"], refunded["paid_fen"]) == (
        1990,
        1990,
        3980,
    )
    sup.wait_for(lambda: len(sup.events("order_received")) == 1)
    assert len(sup.events("order_shipped")) == 2
    assert len(sup.events("order_paid")) == 2  # duplicates changed nothing


def test_keeper_sees_shop_orders_masked_others_are_refused(env, catalog_world):
    order = checkout(env, [(101, 1)], shop_number="123456").json()["orders"][0]
    keeper = env.get(f"/api/v1/orders/{order['id']}", role="member", sub=40)
    assert keeper.status_code == 200
    assert keeper.json()["address"]["phone"] == "138****5678"
    assert keeper.json()["buyer_id"] is None
    buyer = env.get(f"/api/v1/orders/{order['id']}", role="member", sub=BUYER).json()
    assert buyer["address"]["phone"] == "13812345678"
    assert env.get(f"/api/v1/orders/{order['id']}", role="member", sub=99).status_code == 404
    assert env.get(f"/api/v1/orders/{order['id']}", role="supplier", sub=8).status_code == 404
    assert env.get(f"/api/v1/orders/{order['id']}", role="supplier", sub=7).status_code == 200
    listed = env.get("/api/v1/orders?as=keeper", role="member", sub=40).json()
    assert [o["id"] for o in listed["items"]] == [order["id"]]
    assert listed["items"][0]["address"]["phone"] == "138****5678"
    # shipping an unpaid order is a state conflict naming the state
    r = env.post(
        f"/api/v1/orders/{order['id']}/ship",
        json={"carrier": "SF", "tracking_no": "1"},
        role="supplier",
        sub=7,
    )
    assert r.status_code == 409 and r.json()["error"]["details"]["status"] == "created"


def test_orders_list_is_cursor_paged(env, catalog_world):
    ids = [checkout(env, [(101, 1)]).json()["orders"][0]["id"] for _ in range(3)]
    page1 = env.get("/api/v1/orders?limit=2", role="member", sub=BUYER).json()
    assert [o["id"] for o in page1["items"]] == ids[::-1][:2]
    page2 = env.get(
        f"/api/v1/orders?limit=2&cursor={page1['next_cursor']}", role="member", sub=BUYER
    ).json()
    assert [o["id"] for o in page2["items"]] == [ids[0]] and page2["next_cursor"] is None


def test_self_referral_is_flagged_and_an_inactive_shop_gets_nothing(env, catalog_world):
    own = checkout(env, [(101, 1)], buyer=40, share_code="XP9K2M").json()["orders"][0]
    assert own["shop_id"] == 5 and own["self_referral"] is True
    sup.add_shop(6, 50, "654321", status="suspended")
    other = checkout(env, [(101, 1)], shop_number="654321").json()["orders"][0]
    assert other["shop_id"] is None and other["share_id"] is None
    bad = checkout(env, [(101, 1)], shop_number="000000")
    assert bad.status_code == 422


def test_a_landing_visit_within_seven_days_attributes_the_order(env, catalog_world):
    from shared import clock

    sup.WORLD["visits"]["visitor-1"] = {
        "share_id": "share-abc",
        "shop_id": 5,
        "at": clock.iso(clock.now()),
    }
    order = checkout(env, [(101, 1)], visitor_id="visitor-1").json()["orders"][0]
    assert (order["shop_id"], order["share_id"]) == (5, "share-abc")
    env.set_clock("2099-01-01T00:00:00Z")
    try:
        late = checkout(env, [(101, 1)], visitor_id="visitor-1").json()["orders"][0]
        assert late["shop_id"] is None
    finally:
        env.set_clock(None)


def test_prices_come_from_the_catalog_and_bad_products_are_refused(env, catalog_world):
    r = env.post(
        "/api/v1/orders",
        json={"items": [{"product_id": 101, "quantity": 1, "price_fen": 1}], "address": ADDRESS},
        role="member",
        sub=BUYER,
    )
    assert r.status_code == 422  # a client price is not even accepted
    assert checkout(env, [(999, 1)]).status_code == 422
    sup.add_product(303, 7, price_fen=100, stock=5, available=False)
    assert checkout(env, [(303, 1)]).status_code == 409


def test_a_checkout_the_catalog_cannot_supply_orders_nothing_and_leaks_no_stock(env, catalog_world):
    sup.WORLD["fail_reserve"].add(202)  # the catalog grants none of 202
    r = checkout(env, [(101, 2), (202, 1)], checkout_key="k1")
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "insufficient_stock"
    assert error["details"] == [
        {"product_id": 202, "requested": 1, "available": 0, "reason": "insufficient_stock"}
    ]
    # the stock the grant brought of 101 waits in orders' pool, for sale
    assert sup.stock(101) == 10 and sup.stock(202) == 5
    assert sup.pool_units(101) == 10
    # all or none, in one transaction: no order was written (none to cancel)
    assert env.get("/api/v1/orders", role="member", sub=BUYER).json()["items"] == []
    sup.WORLD["fail_reserve"].clear()
    retry = checkout(env, [(101, 2), (202, 1)], checkout_key="k1")
    assert retry.status_code == 201  # the key was freed: the retry really orders
    assert sup.stock(101) == 8


def test_a_retry_of_a_placed_checkout_replays_after_the_stock_sold_out(env, catalog_world):
    first = checkout(env, [(101, 1)], checkout_key="before-sold-out")
    assert first.status_code == 201, first.text
    rest = checkout(env, [(101, 9)], buyer=BUYER + 1)  # another buyer takes every unit left
    assert rest.status_code == 201, rest.text
    assert checkout(env, [(101, 1)], buyer=BUYER + 2).status_code == 409  # sold out
    # the first buyer's retry (a lost answer): the orders it placed, not a 409
    again = checkout(env, [(101, 1)], checkout_key="before-sold-out")
    assert again.status_code == 201, again.text
    assert again.json()["orders"] == first.json()["orders"]
    assert sup.stock(101) == 0


def test_idempotency_key_replays_the_same_orders(env, catalog_world):
    first = checkout(env, [(101, 1)], checkout_key="same")
    second = checkout(env, [(101, 1)], checkout_key="same")
    assert first.status_code == 201 and second.status_code == 201
    assert [o["id"] for o in first.json()["orders"]] == [o["id"] for o in second.json()["orders"]]
    assert sup.stock(101) == 9
    h = {"Idempotency-Key": "abc"}
    body = {"items": [{"product_id": 101, "quantity": 1}], "address": ADDRESS}
    a = env.post("/api/v1/orders", json=body, role="member", sub=BUYER, headers=h)
    b = env.post("/api/v1/orders", json=body, role="member", sub=BUYER, headers=h)
    assert a.json()["orders"][0]["id"] == b.json()["orders"][0]["id"]
    assert sup.stock(101) == 8


def test_amount_mismatch_is_refused_and_changes_nothing(env, catalog_world):
    order = checkout(env, [(101, 1)]).json()["orders"][0]
    r = callback(env, order["id"], order["total_fen"] - 1)[0]
    assert r.status_code == 422
    assert (
        env.get(f"/api/v1/orders/{order['id']}", role="member", sub=BUYER).json()["status"]
        == "created"
    )
    ok = callback(env, order["id"], order["total_fen"])[0]
    assert ok.status_code == 200 and ok.json()["status"] == "paid"


def test_unpaid_order_expires_releases_stock_and_a_late_payment_is_refused(env, catalog_world):
    order = checkout(env, [(101, 3)]).json()["orders"][0]
    assert sup.stock(101) == 7
    env.set_clock("2099-01-01T00:00:00Z")
    try:
        assert env.run_timers()["expired"] == 1
        assert sup.stock(101) == 10
        sup.wait_for(lambda: sup.events("order_expired"))
        late = callback(env, order["id"], order["total_fen"], payment_id="late-1")[0]
        assert late.status_code == 409
        assert late.json()["error"]["details"]["payment"] == "refund_due"
        assert sup.stock(101) == 10
        detail = env.get(f"/api/v1/orders/{order['id']}", role="member", sub=BUYER).json()
        assert detail["status"] == "expired"
        assert not sup.events("order_paid")
    finally:
        env.set_clock(None)


def test_a_payment_after_the_deadline_but_before_the_timer_is_also_refused(env, catalog_world):
    order = checkout(env, [(101, 1)]).json()["orders"][0]
    env.set_clock("2099-01-01T00:00:00Z")
    try:
        r = env.post(f"/api/v1/orders/{order['id']}/pay", role="member", sub=BUYER)
        assert r.status_code == 409
        assert sup.stock(101) == 10
    finally:
        env.set_clock(None)


def test_auto_receive_then_completion_then_no_more_refunds(env, catalog_world):
    order = checkout(env, [(202, 1)]).json()["orders"][0]
    env.post(f"/api/v1/orders/{order['id']}/pay", role="member", sub=BUYER)
    env.post(
        f"/api/v1/orders/{order['id']}/ship",
        json={"carrier": "SF", "tracking_no": "1"},
        role="supplier",
        sub=8,
    )
    env.set_clock("2099-01-01T00:00:00Z")
    try:
        assert env.run_timers()["received"] == 1
        assert env.run_timers()["completed"] == 0  # the after-sales window just opened
        env.set_clock("2099-01-17T00:00:00Z")
        assert env.run_timers()["completed"] == 1
        r = env.post(
            f"/api/v1/orders/{order['id']}/refunds",
            json={"amount_fen": 100, "reason": "late"},
            role="member",
            sub=BUYER,
        )
        assert r.status_code == 409
        sup.wait_for(lambda: sup.events("order_completed"))
    finally:
        env.set_clock(None)


def test_auto_confirm_comes_ten_days_after_shipping_not_before(env, catalog_world):
    from datetime import timedelta

    from shared import clock

    order = checkout(env, [(202, 1)]).json()["orders"][0]
    env.post(f"/api/v1/orders/{order['id']}/pay", role="member", sub=BUYER)
    env.post(
        f"/api/v1/orders/{order['id']}/ship",
        json={"carrier": "SF", "tracking_no": "1"},
        role="supplier",
        sub=8,
    )
    detail = env.get(f"/api/v1/orders/{order['id']}", role="supplier", sub=8).json()
    shipped_at = clock.parse(detail["shipped_at"])
    env.set_clock(clock.iso(shipped_at + timedelta(days=9, hours=23)))
    try:
        assert env.run_timers()["received"] == 0  # one hour early
        env.set_clock(clock.iso(shipped_at + timedelta(days=10)))
        assert env.run_timers()["received"] == 1
        received = sup.wait_for(lambda: sup.events("order_received"))[0]["data"]
        # orders owns after_sales_days (15): payouts settles from the instant the event carries
        closes = clock.parse(received["after_sales_until"])
        assert closes - clock.parse(received["at"]) == timedelta(days=15)
    finally:
        env.set_clock(None)


def test_full_refund_before_shipping_returns_the_stock(env, catalog_world):
    order = checkout(env, [(202, 2)]).json()["orders"][0]
    env.post(f"/api/v1/orders/{order['id']}/pay", role="member", sub=BUYER)
    assert sup.stock(202) == 3
    rid = env.post(
        f"/api/v1/orders/{order['id']}/refunds",
        json={"amount_fen": 10000, "reason": "changed my mind"},
        role="member",
        sub=BUYER,
    ).json()["id"]
    r = env.post(f"/api/v1/refunds/{rid}/approve", role="supplier", sub=8)
    assert r.status_code == 200
    detail = env.get(f"/api/v1/orders/{order['id']}", role="member", sub=BUYER).json()
    assert detail["status"] == "refunded" and detail["refunded_fen"] == 10000
    assert sup.stock(202) == 5
    ship = env.post(
        f"/api/v1/orders/{order['id']}/ship",
        json={"carrier": "SF", "tracking_no": "1"},
        role="supplier",
        sub=8,
    )
    assert ship.status_code == 409


def test_orders_service_killed_after_checkout_completes_after_restart(env, catalog_world):
    order = checkout(env, [(101, 1)]).json()["orders"][0]
    env.restart_orders(kill=True)  # container.kill() before payment; same database
    r = env.post(f"/api/v1/orders/{order['id']}/pay", role="member", sub=BUYER)
    assert r.status_code == 200 and r.json()["status"] == "paid"
    sup.wait_for(lambda: sup.events("order_paid"))
    assert sup.WORLD["reservations"][f"order-{order['id']}"]["state"] == "committed"


def test_orders_service_killed_after_payment_commit_completes_after_restart(env, catalog_world):
    env.restart_orders(kill=True, OUTBOX_RELAY_ENABLED=0)  # this process never relays
    order = checkout(env, [(101, 1)]).json()["orders"][0]
    sup.WORLD["fail_commit"] = True  # the catalog cannot commit stock for a while
    r = env.post(f"/api/v1/orders/{order['id']}/pay", role="member", sub=BUYER)
    assert r.status_code == 200
    engine = create_engine(env.db_url)
    with engine.connect() as conn:  # committed, not yet relayed
        pending = conn.execute(text("SELECT event_type FROM outbox WHERE published_at IS NULL"))
        assert [row[0] for row in pending] == ["order_paid"]
    engine.dispose()
    env.restart_orders(kill=True, ORDERS_TIMER_SECONDS=0.3)  # killed mid-flow
    sup.WORLD["fail_commit"] = False
    sup.wait_for(
        lambda: (
            sup.WORLD["reservations"].get(f"order-{order['id']}", {}).get("state") == "committed"
        ),
        timeout=15,
    )  # the restarted relay publishes order_paid; the catalog records the sale (retrying)
    sup.wait_for(lambda: sup.events("order_paid"))
    assert {e["id"] for e in sup.events("order_paid")} == {sup.events("order_paid")[0]["id"]}
    assert sup.stock(101) == 9
    # the payment's own transaction recorded it: the catalog commits from order_paid
    detail = sup.wait_for(
        lambda: (lambda d: d if d["stock_state"] == "committed" else None)(
            env.get(f"/api/v1/orders/{order['id']}", role="supplier", sub=7).json()
        ),
        timeout=15,
    )
    assert detail["status"] == "paid" and detail["stock_state"] == "committed"


def test_cart_is_kept_per_member(env, catalog_world):
    r = env.put(
        "/api/v1/cart",
        json={"items": [{"product_id": 101, "quantity": 2}]},
        role="member",
        sub=BUYER,
    )
    assert r.status_code == 200 and r.json()["items"] == [{"product_id": 101, "quantity": 2}]
    assert env.get("/api/v1/cart", role="member", sub=42).json()["items"] == []
    checkout(env, [(101, 2)])
    assert env.get("/api/v1/cart", role="member", sub=BUYER).json()["items"] == []


def test_callback_body_is_verified_over_raw_bytes(env, catalog_world):
    order = checkout(env, [(101, 1)]).json()["orders"][0]
    raw, sig = SANDBOX.build_callback(order["id"], order["total_fen"], "p-raw")
    tampered = json.dumps({**json.loads(raw), "amount_fen": 1}).encode()
    import requests

    r = requests.post(
        env.url + "/api/v1/payments/callback",
        data=tampered,
        headers={SIGNATURE_HEADER: sig},
        timeout=10,
    )
    assert r.status_code == 401


def test_concurrent_callbacks_pay_an_order_exactly_once(env, catalog_world):
    import eventlet

    order = checkout(env, [(101, 1)]).json()["orders"][0]
    raw, sig = SANDBOX.build_callback(order["id"], order["total_fen"], "pay-same")
    other = [
        SANDBOX.build_callback(order["id"], order["total_fen"], f"pay-other-{n}") for n in range(3)
    ]
    deliveries = [(raw, sig)] * 8 + other

    def deliver(pair):
        return SandboxProvider.deliver(env.url + "/api/v1/payments/callback", *pair)[0]

    answers = list(eventlet.GreenPool(len(deliveries)).imap(deliver, deliveries))
    codes = sorted(a.status_code for a in answers)
    assert set(codes) <= {200, 409}, [a.text for a in answers]
    applied = [a for a in answers if a.status_code == 200 and not a.json().get("duplicate")]
    assert len(applied) == 1
    refused = [a for a in answers if a.status_code == 409]
    assert all(a.json()["error"]["details"]["payment"] == "refund_due" for a in refused)
    sup.wait_for(lambda: sup.events("order_paid"))
    detail = env.get(f"/api/v1/orders/{order['id']}", role="member", sub=BUYER).json()
    assert detail["status"] == "paid" and detail["paid_fen"] == order["total_fen"]
    assert [h["to"] for h in detail["history"] if h["from"] != h["to"]] == ["created", "paid"]
    assert sup.stock(101) == 9
    assert len(sup.events("order_paid")) == 1


def test_a_failed_payment_notice_out_of_order_changes_nothing(env, catalog_world):
    order = checkout(env, [(101, 1)]).json()["orders"][0]
    assert callback(env, order["id"], order["total_fen"], payment_id="p-ok")[0].status_code == 200
    body = json.dumps(
        {
            "payment_id": "p-ok",
            "order_id": order["id"],
            "amount_fen": order["total_fen"],
            "status": "failed",
        }
    ).encode()
    from orders.payments import sign

    r = SandboxProvider.deliver(
        env.url + "/api/v1/payments/callback", body, sign(SANDBOX.secret, body)
    )[0]
    assert r.status_code == 200 and r.json()["status"] == "paid"
    detail = env.get(f"/api/v1/orders/{order['id']}", role="member", sub=BUYER).json()
    assert detail["status"] == "paid"


def test_another_partys_order_or_refund_answers_exactly_what_a_missing_one_does(env, catalog_world):
    """No enumeration (issue 13): ids are random, and "not yours" is byte-for-byte "missing"."""
    placed = [checkout(env, [(101, 1)]).json()["orders"][0]["id"] for _ in range(3)]
    assert all(0 < i < 2**31 for i in placed)
    assert sorted(placed) != list(range(min(placed), min(placed) + 3))  # not a sequence
    order_id = placed[0]
    env.post(f"/api/v1/orders/{order_id}/pay", role="member", sub=BUYER)
    refund_id = env.post(
        f"/api/v1/orders/{order_id}/refunds",
        json={"amount_fen": 100, "reason": "one was broken"},
        role="member",
        sub=BUYER,
    ).json()["id"]
    missing = 2**31 - 1 if 2**31 - 1 not in (order_id, refund_id) else 1

    def same(attempt, real_id, role, sub):
        theirs, absent = attempt(real_id, role, sub), attempt(missing, role, sub)
        assert theirs.status_code == absent.status_code == 404, theirs.text
        assert theirs.content.replace(str(real_id).encode(), b"<id>") == absent.content.replace(
            str(missing).encode(), b"<id>"
        )
        return theirs.json()["error"]["code"]

    def get_order(i, role, sub):
        return env.get(f"/api/v1/orders/{i}", role=role, sub=sub)

    def ship(i, role, sub):
        body = {"carrier": "SF", "tracking_no": "1"}
        return env.post(f"/api/v1/orders/{i}/ship", json=body, role=role, sub=sub)

    def cancel(i, role, sub):
        return env.post(f"/api/v1/orders/{i}/cancel", role=role, sub=sub)

    def get_refund(i, role, sub):
        return env.get(f"/api/v1/refunds/{i}", role=role, sub=sub)

    def approve(i, role, sub):
        return env.post(f"/api/v1/refunds/{i}/approve", role=role, sub=sub)

    # (contacts and questions are the messages service's: tests/e2e/test_conversations.py)
    for attempt in (get_order, cancel):
        assert same(attempt, order_id, "member", 99) == "order_not_found"
    for attempt in (get_order, ship):
        assert same(attempt, order_id, "supplier", 8) == "order_not_found"
    assert same(get_refund, refund_id, "member", 99) == "refund_not_found"
    assert same(approve, refund_id, "supplier", 8) == "refund_not_found"
