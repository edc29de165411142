"""The outbox relay publishes a batch, then waits for the broker's confirms once: acked rows are
marked published, a nacked row keeps its place with its error, no confirm in time fails the
batch. The broker is a fake channel here (the real one is in tests/integration)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from sqlalchemy import insert, select

from shared import clock
from shared.db import make_engine, service_metadata
from shared.outbox import BrokerNack, OutboxRelay


class FakeChannel:
    """Answers each ``wait`` with the next (ack|nack, tag, multiple) of its plan."""

    def __init__(self, plan):
        self.plan = list(plan)
        self.relay: OutboxRelay | None = None
        self.waits = 0

    def wait(self, methods, timeout=None):
        self.waits += 1
        if not self.plan:
            raise TimeoutError("nothing more from the fake broker")
        kind, tag, multiple = self.plan.pop(0)
        assert self.relay is not None
        (self.relay._on_ack if kind == "ack" else self.relay._on_nack)(tag, multiple)


@pytest.fixture
def relay(tmp_path):
    metadata = service_metadata()
    engine = make_engine(f"sqlite:///{tmp_path}/relay.db")
    metadata.create_all(engine)
    relay = OutboxRelay(
        "emitter", engine, metadata.tables["outbox"], {"AMQP_URI": "memory://"}, None
    )
    yield relay
    engine.dispose()


def wire(relay: OutboxRelay, plan) -> FakeChannel:
    channel = FakeChannel(plan)
    channel.relay = relay
    published = []
    producer = SimpleNamespace(channel=channel, publish=lambda body, **kw: published.append(body))
    relay._producer = producer  # type: ignore[assignment]
    relay._get_producer = lambda: producer  # type: ignore[method-assign]
    return channel


def add_rows(relay: OutboxRelay, count: int) -> None:
    with relay.engine.begin() as conn:
        for n in range(count):
            conn.execute(
                insert(relay.table).values(
                    event_id=f"ev-{n}",
                    event_type="note_written",
                    payload=json.dumps({"id": f"ev-{n}", "data": {"n": n}}),
                    created_at=clock.real_now(),
                    attempts=0,
                )
            )


def rows(relay: OutboxRelay):
    t = relay.table
    with relay.engine.connect() as conn:
        return conn.execute(
            select(t.c.event_id, t.c.published_at, t.c.attempts, t.c.last_error).order_by(t.c.id)
        ).all()


def test_a_batch_waits_for_the_broker_once_not_once_per_event(relay):
    add_rows(relay, 5)
    channel = wire(relay, [("ack", 5, True)])
    assert relay.relay_once() == 5
    assert channel.waits == 1
    assert all(r.published_at is not None and r.attempts == 1 for r in rows(relay))


def test_a_nacked_event_stays_unpublished_with_its_error_and_the_rest_are_published(relay):
    add_rows(relay, 5)
    wire(relay, [("ack", 2, True), ("nack", 3, False), ("ack", 4, False), ("ack", 5, False)])
    with pytest.raises(BrokerNack):
        relay.relay_once()
    state = {r.event_id: r for r in rows(relay)}
    assert state["ev-2"].published_at is None and state["ev-2"].attempts == 1
    assert "refused" in state["ev-2"].last_error
    assert all(state[f"ev-{n}"].published_at is not None for n in (0, 1, 3, 4))


def test_no_confirm_in_time_fails_the_batch_and_publishes_nothing_unconfirmed(relay):
    add_rows(relay, 3)
    relay.confirm_timeout = 0.0
    wire(relay, [])
    with pytest.raises(TimeoutError):
        relay.relay_once()
    assert all(r.published_at is None for r in rows(relay))


def test_a_publish_that_raises_mid_batch_blames_its_own_row(relay):
    add_rows(relay, 4)
    channel = wire(relay, [("ack", 2, True)])
    calls = []

    def publish(body, **kw):
        calls.append(body)
        if len(calls) == 3:
            raise ConnectionError("broker gone")

    relay._producer.publish = publish  # type: ignore[union-attr]
    with pytest.raises(ConnectionError):
        relay.relay_once()
    state = {r.event_id: r for r in rows(relay)}
    assert state["ev-2"].published_at is None and "broker gone" in state["ev-2"].last_error
    assert state["ev-3"].published_at is None and state["ev-3"].attempts == 0
    assert channel.waits == 0  # nothing was confirmed: ev-0 and ev-1 are published again
    assert state["ev-0"].published_at is None
