"""The supplier's refund queue with deadlines (issue 17), through the real gateway: every
waiting refund carries its ``decide_by``; past it the orders timer approves it (the default
``refund_timeout_action``) or escalates it to the platform's queue."""

from __future__ import annotations

from datetime import timedelta

import orders_support as sup
from test_orders_flow import BUYER, checkout

from shared import clock


def _paid_order(env, product=202, quantity=1):
    order = checkout(env, [(product, quantity)]).json()["orders"][0]
    paid = env.post(f"/api/v1/orders/{order['id']}/pay", role="member", sub=BUYER)
    assert paid.status_code == 200, paid.text
    return order


def _ask_refund(env, order, amount_fen=100):
    resp = env.post(
        f"/api/v1/orders/{order['id']}/refunds",
        json={"amount_fen": amount_fen, "reason": "broken"},
        role="member",
        sub=BUYER,
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_a_supplier_sees_its_own_waiting_refunds_most_urgent_first_with_a_deadline(
    env, catalog_world
):
    first = _ask_refund(env, _paid_order(env, 202))
    second = _ask_refund(env, _paid_order(env, 202))
    other = _ask_refund(env, _paid_order(env, 101))  # supplier 7's

    assert clock.parse(first["decide_by"]) - clock.parse(first["created_at"]) == timedelta(hours=48)
    queue = env.get("/api/v1/refunds", role="supplier", sub=8, params={"status": "requested"})
    assert queue.status_code == 200, queue.text
    items = queue.json()["items"]
    assert [i["id"] for i in items] == [first["id"], second["id"]]  # not supplier 7's
    assert all(i["decide_by"] and i["escalated"] is False for i in items)
    assert items[0]["order_status"] == "paid"

    page = env.get("/api/v1/refunds", role="supplier", sub=8, params={"limit": 1}).json()
    assert [i["id"] for i in page["items"]] == [first["id"]] and page["next_cursor"]
    rest = env.get(
        "/api/v1/refunds",
        role="supplier",
        sub=8,
        params={"limit": 1, "cursor": page["next_cursor"]},
    ).json()
    assert [i["id"] for i in rest["items"]] == [second["id"]] and rest["next_cursor"] is None

    everyone = env.get("/api/v1/refunds", role="admin").json()["items"]
    assert {i["id"] for i in everyone} == {first["id"], second["id"], other["id"]}
    assert env.get("/api/v1/refunds", role="member", sub=BUYER).status_code == 403
    assert env.get("/api/v1/refunds", params={"status": "lost"}, role="admin").status_code == 422

    env.post(f"/api/v1/refunds/{first['id']}/reject", role="supplier", sub=8)
    waiting = env.get("/api/v1/refunds", role="supplier", sub=8).json()["items"]
    assert [i["id"] for i in waiting] == [second["id"]]
    rejected = env.get("/api/v1/refunds", role="supplier", sub=8, params={"status": "rejected"})
    assert [i["id"] for i in rejected.json()["items"]] == [first["id"]]
    doc = env.get("/api/v1/openapi.json").json()
    params = {p["name"] for p in doc["paths"]["/api/v1/refunds"]["get"]["parameters"]}
    assert {"status", "escalated", "cursor", "limit"} <= params


def test_an_undecided_refund_is_approved_by_the_timer_at_its_deadline(env, catalog_world):
    order = _paid_order(env, 202, 2)
    refund = _ask_refund(env, order, amount_fen=10000)  # the whole order, before shipping
    decide_by = clock.parse(refund["decide_by"])
    env.set_clock(clock.iso(decide_by - timedelta(minutes=1)))
    try:
        assert env.run_timers()["refunds_timed_out"] == 0  # one minute early
        env.set_clock(clock.iso(decide_by))
        assert env.run_timers()["refunds_timed_out"] == 1
        assert env.run_timers()["refunds_timed_out"] == 0  # once
    finally:
        env.set_clock(None)
    after = env.get(f"/api/v1/refunds/{refund['id']}", role="supplier", sub=8).json()
    assert after["status"] == "approved" and after["provider_refund_id"]
    detail = env.get(f"/api/v1/orders/{order['id']}", role="member", sub=BUYER).json()
    assert detail["status"] == "refunded" and detail["refunded_fen"] == 10000
    assert sup.stock(202) == 5  # a full refund before shipping gives the stock back
    refunded = sup.wait_for(lambda: sup.events("order_refunded"))[0]["data"]
    assert refunded["refund_id"] == refund["id"] and refunded["amount_fen"] == 10000
    assert any(h["by"] == "system:refund_timeout" for h in detail["history"])
    late = env.post(f"/api/v1/refunds/{refund['id']}/reject", role="supplier", sub=8)
    assert late.status_code == 409


def test_with_escalate_an_overdue_refund_goes_to_the_platforms_queue(env, catalog_world):
    env.restart_orders(kill=False, RULES={"refund_timeout_action": "escalate"})
    refund = _ask_refund(env, _paid_order(env, 202))
    env.set_clock(clock.iso(clock.parse(refund["decide_by"]) + timedelta(seconds=1)))
    try:
        assert env.run_timers()["refunds_timed_out"] == 1
        assert env.run_timers()["refunds_timed_out"] == 0
    finally:
        env.set_clock(None)
    after = env.get(f"/api/v1/refunds/{refund['id']}", role="admin").json()
    assert after["status"] == "requested" and after["escalated"] and after["escalated_at"]
    told = sup.wait_for(lambda: sup.events("refund_escalated"))  # messages tells both sides
    assert [e["data"]["refund_id"] for e in told] == [refund["id"]]  # once, for two timer runs
    assert told[0]["data"]["buyer_id"] == BUYER and told[0]["data"]["amount_fen"] > 0
    queue = env.get("/api/v1/refunds", role="admin", params={"escalated": "true"}).json()
    assert [i["id"] for i in queue["items"]] == [refund["id"]]
    assert (
        env.get("/api/v1/refunds", role="admin", params={"escalated": "false"}).json()["items"]
        == []
    )
    decided = env.post(f"/api/v1/refunds/{refund['id']}/approve", role="admin")
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "approved"
