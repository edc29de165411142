"""Orders' stock pool with the real orders service and a fake catalog: grants whose answers
are lost, the timer and the checkout asking them again, the catalog's reclaim over RPC, and a
50-way race on one product (no oversell, nothing lost between the pool and the catalog)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import orders_support as sup
import pytest
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from test_orders_flow import checkout

pytestmark = pytest.mark.integration


def grants(env) -> dict[str, str]:
    engine = create_engine(env.db_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT grant_id, state FROM stock_grants")).all()
    finally:
        engine.dispose()
    return {r.grant_id: r.state for r in rows}


def held_by_orders(env, product_id: int) -> int:
    """Units of the product held by orders whose stock is out (unpaid or paid)."""
    engine = create_engine(env.db_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT coalesce(sum(i.quantity), 0) FROM order_items i JOIN orders o"
                        " ON o.id = i.order_id WHERE i.product_id = :p AND o.stock_state IN"
                        " ('reserved', 'committed', 'to_return')"
                    ),
                    {"p": product_id},
                ).scalar()
            )
    finally:
        engine.dispose()


def test_a_grant_whose_answer_was_lost_is_asked_again_and_applied_once(env, catalog_world):
    sup.WORLD["lose_grant_answer"] = 1  # the catalog grants, then the answer is lost
    lost = checkout(env, [(202, 2)])
    assert lost.status_code == 503, lost.text  # nothing was ordered ...
    assert env.get("/api/v1/orders", role="member", sub=41).json()["items"] == []
    # ... but the catalog granted all 5 units of 202: orders knows the grant as asked
    assert sup.WORLD["stock"][202] == 0 and sup.WORLD["allotted"][202] == 5
    assert list(grants(env).values()) == ["asked"]
    assert sup.pool_units(202) == 0

    # the next checkout's own grant gets nothing: it asks the unanswered grant again first
    ok = checkout(env, [(202, 2)])
    assert ok.status_code == 201, ok.text
    assert sorted(grants(env).values()) == ["applied", "applied"]
    assert sup.pool_units(202) == 3 and sup.stock(202) == 3  # 5 granted once, 2 ordered
    assert sup.WORLD["allotted"][202] == 5  # nothing granted twice


def test_the_timer_applies_a_lost_grant_after_its_retry_delay(env, catalog_world):
    sup.WORLD["lose_grant_answer"] = 1
    assert checkout(env, [(101, 1)]).status_code == 503
    [grant_id] = grants(env)
    assert env.run_timers()["grants_retried"] == 0  # asked just now: not yet
    env.set_clock("2099-01-01T00:00:00Z")  # well past stock_grant_retry_seconds
    try:
        assert env.run_timers()["grants_retried"] == 1
    finally:
        env.set_clock(None)
    assert grants(env) == {grant_id: "applied"}
    assert sup.pool_units(101) == 10 and sup.stock(101) == 10  # all of 101, in the pool
    assert env.run_timers()["grants_retried"] == 0
    asked = [c for c in sup.WORLD["calls"] if c[0] == "grant_stock"]
    assert asked == [("grant_stock", grant_id)] * 2  # asked twice, granted once


def test_the_catalog_reclaims_free_units_and_revokes_an_unapplied_grant(
    env, catalog_world, rabbit_config
):
    assert checkout(env, [(101, 3)]).status_code == 201  # pool of 101: 10 granted, 3 ordered
    sup.WORLD["lose_grant_answer"] = 1
    assert checkout(env, [(202, 1)]).status_code == 503  # a grant of 202 is left asked
    [lost] = [g for g, state in grants(env).items() if state == "asked"]
    with ClusterRpcProxy({"AMQP_URI": rabbit_config["AMQP_URI"]}) as rpc:
        taken = rpc.orders.reclaim_stock("rc-1", [101, 202], [lost, "never-asked"])
        again = rpc.orders.reclaim_stock("rc-1", [101, 202], [])
    assert taken == {
        "reclaim_id": "rc-1",
        "items": [{"product_id": 101, "units": 7}, {"product_id": 202, "units": 0}],
        "revoked": sorted([lost, "never-asked"]),
    }
    assert again == taken  # once per reclaim id
    assert sup.pool_units(101) == 0 and held_by_orders(env, 101) == 3
    assert grants(env)[lost] == "revoked"
    env.set_clock("2099-01-01T00:00:00Z")
    try:
        assert env.run_timers()["grants_retried"] == 0  # a revoked grant is never applied
    finally:
        env.set_clock(None)
    assert sup.pool_units(202) == 0


@pytest.mark.postgres_only
def test_fifty_buyers_race_for_one_product_and_nothing_is_oversold_or_lost(env, catalog_world):
    sup.add_product(404, 7, price_fen=900, stock=37, commission_bps=1000)

    def buy(i: int) -> int:
        return checkout(env, [(404, 1 + i % 2)], buyer=1000 + i).status_code

    with ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(buy, range(50)))
    assert set(codes) <= {201, 409}, codes
    ordered = held_by_orders(env, 404)
    assert ordered <= 37  # never more than the catalog had
    # what the catalog gave out is in orders, in the pool, or in no grant at all
    assert sup.WORLD["allotted"][404] == ordered + sup.pool_units(404)
    assert sup.WORLD["stock"][404] + sup.WORLD["allotted"][404] == 37
    # a refusal only when what is left cannot cover a line of 1 or 2 units
    assert codes.count(409) == 0 or sup.stock(404) < 2


def test_a_price_the_read_model_has_not_seen_yet_is_refused_never_sold(
    env, catalog_world, rabbit_config
):
    assert checkout(env, [(101, 1)]).status_code == 201  # 101 known at 1990, pool at 1990
    # the supplier lowers the price: the catalog empties orders' pool first (reclaim) and
    # its product_changed event has not reached orders' read model yet
    sup.WORLD["products"][101]["price_fen"] = 1490
    with ClusterRpcProxy({"AMQP_URI": rabbit_config["AMQP_URI"]}) as rpc:
        rpc.orders.reclaim_stock("rc-price", [101], [])
    sup.WORLD["stock"][101] += 9  # what the reclaim gave back
    stale = checkout(env, [(101, 1)])
    assert stale.status_code == 409, stale.text
    error = stale.json()["error"]
    assert error["code"] == "insufficient_stock"
    assert [(d["reason"], d["price_fen"]) for d in error["details"]] == [("price_changed", 1490)]
    # the read model was refreshed with the refusal: the buyer's retry pays the new price
    again = checkout(env, [(101, 1)])
    assert again.status_code == 201, again.text
    assert again.json()["orders"][0]["total_fen"] == 1490
