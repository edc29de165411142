"""RPC requests and replies go straight onto a producer kept bound to its channel (no kombu
``ensure``, no pool revive per publish); a broken connection still reconnects and the message
goes out, and the broken producer is never used again."""

from __future__ import annotations

import pytest
from kombu import Connection, Exchange, Queue

from shared.rpc import RpcPublisher, bound_producers

pytestmark = pytest.mark.integration


def test_a_publish_on_a_dead_pooled_connection_reconnects_and_goes_out(rabbit_config):
    uri = rabbit_config["AMQP_URI"]
    exchange = Exchange("t-rpc", type="topic", durable=False)
    queue = Queue("t-rpc-q", exchange=exchange, routing_key="svc.m", durable=False)
    got = []

    def drain_until(count):
        while len(got) < count:
            try:
                conn.drain_events(timeout=5)
            except TimeoutError:
                raise AssertionError(f"only {got} arrived, {count} expected") from None

    with Connection(uri) as conn:
        queue(conn.channel()).declare()
        with conn.Consumer(queue, callbacks=[lambda body, m: (got.append(body), m.ack())]):
            publisher = RpcPublisher(uri, exchange=exchange, routing_key="svc.m")
            publisher.publish({"n": 1})
            # received before the connection dies: a publish without confirms that is still in
            # the broker's socket buffer when the connection breaks may be lost (that is what
            # RPC deadlines are for), which is not what this test is about
            drain_until(1)
            bound = bound_producers(uri)
            (producer,) = bound.free  # the producer the publisher used, kept bound
            producer.connection.connection.transport.sock.close()  # the broker went away
            publisher.publish({"n": 2})  # fails on the fast path, retried after a reconnect
            assert producer not in bound.free  # closed, not kept
            publisher.publish({"n": 3})  # a fresh bound producer
            drain_until(3)
    assert got == [{"n": 1}, {"n": 2}, {"n": 3}]
