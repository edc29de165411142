"""State each instance keeps in memory, made safe for several instances (issue 18): the clock's
versioned moves, the landing-page cache's drop, the clock's Redis key per platform."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from nameko.events import BROADCAST

from gateway.web import landing
from shared import clock
from shared.broadcast import BroadcastEventHandler
from shared.clocksync import clock_key
from shared.lru import LRU


@pytest.fixture(autouse=True)
def real_time():
    yield
    clock.apply(0.0, clock.version())  # back to real time, whatever the test did


def test_a_move_older_than_the_one_in_force_is_ignored():
    base = clock.version()
    assert clock.apply(3600.0, base + 20)
    assert not clock.apply(-3600.0, base + 10)  # a late broadcast of an older move
    assert clock.offset_seconds() == 3600.0
    assert clock.now() - clock.real_now() > timedelta(minutes=59)
    assert clock.apply(0.0, base + 20)  # the same move again is taken (idempotent)
    assert clock.version() == base + 20


def test_every_change_of_the_clock_tells_the_listeners():
    calls = []

    def listener() -> None:
        calls.append(clock.now())

    clock.on_change(listener)
    try:
        clock.set_now(datetime(2030, 1, 1, tzinfo=UTC))
        clock.apply(0.0, clock.version() + 1)
        clock.reset()
    finally:
        clock.remove_listener(listener)
    assert len(calls) == 3 and calls[0].year == 2030


def test_the_stored_clock_belongs_to_one_platform_its_vhost():
    assert clock_key({"AMQP_URI": "amqp://u:p@h:5672/xiaopu_bench_ab12"}) == (
        "xiaopu:clock:xiaopu_bench_ab12"
    )
    assert clock_key({"AMQP_URI": "amqp://u:p@h:5672/"}) == "xiaopu:clock:/"
    assert clock_key({"XIAOPU_CLOCK_KEY": "mine", "AMQP_URI": "amqp://h/x"}) == "mine"


def test_lru_drops_entries_by_key_and_value():
    cache: LRU[str, int] = LRU(10)
    for i, key in enumerate("abcd"):
        cache.put(key, i)
    assert cache.discard_items_where(lambda k, v: v % 2 == 1 or k == "a") == 3
    assert cache.get("c") == 2 and len(cache) == 1


def test_a_product_change_drops_its_landing_pages_and_holds_them_back_briefly():
    landing.PAGES.clear()
    landing.PAGES.put("AAAA1111", (1e12, {"product_id": 7, "shop_id": 1}, b"old"))
    landing.PAGES.put("BBBB2222", (1e12, {"product_id": 8, "shop_id": 1}, b"other"))
    landing.PRODUCTS.put(7, {"price_fen": 100})
    try:
        assert landing.forget(product_id=7) == 1
        assert landing.PAGES.get("AAAA1111") is None and landing.PAGES.get("BBBB2222")
        assert landing.PRODUCTS.get(7) is None
        # a page of product 7 fetched right now may come from a share instance the change has
        # not reached yet: it is shown, not kept
        assert landing.held({"product_id": 7, "shop_id": 2})
        assert not landing.held({"product_id": 8, "shop_id": 2})
        assert landing.forget(shop_id=1) == 1  # the rest of shop 1
        assert len(landing.PAGES) == 0
    finally:
        landing.PAGES.clear()
        landing.HELD_PRODUCTS.clear()
        landing.HELD_SHOPS.clear()


def test_a_broadcast_handler_is_non_durable_and_named_per_instance(monkeypatch):
    monkeypatch.setenv("XIAOPU_INSTANCE_ID", "host-1:42")
    handler = BroadcastEventHandler("catalog", "product_changed")
    assert handler.handler_type == BROADCAST and handler.reliable_delivery is False
    first, second = handler.broadcast_identifier, handler.broadcast_identifier
    assert first.startswith("host-1:42-") and second.startswith("host-1:42-")
    assert first != second  # a restarted instance never meets its predecessor's exclusive queue
