"""orders' HTTP door, the gateway's side (shared/httprpc.py): connections kept for reuse, as
many as the gateway has workers; the door key."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from shared.httprpc import RETRY_HEADER, HttpMethods, HttpRpcProxy, _Connections, door_key

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


class _Answer:
    def __init__(self, body: bytes, headers: dict[str, str]):
        self.body, self.headers, self.status, self.will_close = body, headers, 200, False

    def read(self) -> bytes:
        return self.body

    def getheader(self, name: str):
        return self.headers.get(name)


class _Conn:
    """A connection to one instance: a stopping one refuses every call (the door's retry
    header), a live one answers it."""

    def __init__(self, stopping: bool):
        self.stopping, self.calls = stopping, 0

    def request(self, *_args) -> None:
        self.calls += 1

    def getresponse(self) -> _Answer:
        if self.stopping:
            error = {"exc_type": "ServiceUnavailable", "value": "stopping", "exc_args": []}
            return _Answer(json.dumps({"error": error}).encode(), {RETRY_HEADER: "1"})
        return _Answer(json.dumps({"result": "ok", "error": None}).encode(), {})

    def close(self) -> None:
        pass


def test_a_refused_call_is_retried_on_a_new_connection_not_another_kept_one():
    """Every kept connection may lead to the stopping instance (the kernel spread them over
    both): the retry goes on a new connection, which only a live instance accepts."""
    kept = [_Conn(stopping=True) for _ in range(5)]
    pool = _Connections("http://127.0.0.1:9", keep=10)
    pool.free = list(kept)
    fresh: list[_Conn] = []

    def new() -> _Conn:
        fresh.append(_Conn(stopping=False))
        return fresh[-1]

    pool.new = new  # type: ignore[method-assign]
    methods = HttpMethods("orders", pool, None, "key")
    assert methods.checkout() == "ok"
    assert sum(c.calls for c in kept) == 1 and [c.calls for c in fresh] == [1]
