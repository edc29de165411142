"""RPC requests and replies go straight onto the pooled producer's channel (no kombu ``ensure``
per publish); a broken connection still reconnects and the message goes out."""

from __future__ import annotations

import pytest
from kombu import Connection, Exchange, Queue

from shared.rpc import RpcPublisher, producer_pool

pytestmark = pytest.mark.integration


def test_a_publish_on_a_dead_pooled_connection_reconnects_and_goes_out(rabbit_config):
    uri = rabbit_config["AMQP_URI"]
    exchange = Exchange("t-rpc", type="topic", durable=False)
    queue = Queue("t-rpc-q", exchange=exchange, routing_key="svc.m", durable=False)
    with Connection(uri) as conn:
        queue(conn.channel()).declare()
        publisher = RpcPublisher(uri, exchange=exchange, routing_key="svc.m")
        publisher.publish({"n": 1})
        pool = producer_pool(uri, False, None, None)
        with pool.acquire(block=True) as producer:  # the producer the publisher used
            producer.connection.connection.transport.sock.close()  # the broker went away
        publisher.publish({"n": 2})  # fails on the fast path, retried after a reconnect
        got = []
        with conn.Consumer(queue, callbacks=[lambda body, m: (got.append(body), m.ack())]):
            while len(got) < 2:
                conn.drain_events(timeout=5)
    assert got == [{"n": 1}, {"n": 2}]
