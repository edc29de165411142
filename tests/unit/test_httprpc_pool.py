"""orders' HTTP door, the gateway's side (shared/httprpc.py): connections kept for reuse, as
many as the gateway has workers; the door key."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from shared.httprpc import HttpRpcProxy, _Connections, door_key

pytestmark = pytest.mark.unit


def test_released_connections_are_kept_up_to_the_limit_and_reused():
    pool = _Connections("http://127.0.0.1:9", keep=3)  # http.client connects lazily
    taken = [pool.acquire() for _ in range(5)]
    assert [reused for _, reused in taken] == [False] * 5
    for conn, _ in taken:
        pool.release(conn)
    assert len(pool.free) == 3  # the other two were closed
    again = [pool.acquire() for _ in range(4)]
    assert [reused for _, reused in again] == [True, True, True, False]


def test_the_gateway_keeps_as_many_connections_as_it_has_workers():
    proxy = HttpRpcProxy("orders")
    proxy.container = SimpleNamespace(
        config={"XIAOPU_HTTP_RPC_ORDERS": "http://127.0.0.1:65001", "AMQP_URI": "amqp://x"},
        max_workers=100,
    )
    proxy.setup()
    assert proxy.pool is not None and proxy.pool.keep == 100


def test_no_door_configured_means_rabbitmq():
    proxy = HttpRpcProxy("orders")
    proxy.container = SimpleNamespace(config={"AMQP_URI": "amqp://x"}, max_workers=10)
    proxy.setup()
    assert proxy.get_dependency(None) is None


def test_the_door_key_is_configured_or_follows_the_broker_credentials():
    assert door_key({"XIAOPU_HTTP_RPC_KEY": "k-1", "AMQP_URI": "amqp://a"}) == "k-1"
    one = door_key({"AMQP_URI": "amqp://u:p@h/"})
    assert one == door_key({"AMQP_URI": "amqp://u:p@h/"})
    assert one != door_key({"AMQP_URI": "amqp://u:other@h/"})
