"""The outbox relay publishes a batch, then waits for the broker's confirms once: acked rows are
marked published, a nacked row keeps its place with its error, no confirm in time fails the
batch. The broker is a fake channel here (the real one is in tests/integration).

The relay publishes the stored JSON text as it is: a consumer decodes exactly the dict (and
gets exactly the correlation header) it got when the relay parsed the envelope and kombu
serialised it again."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest
from kombu import Connection, Exchange, Queue
from sqlalchemy import insert, select

from shared import clock
from shared.db import envelope, make_engine, service_metadata
from shared.outbox import BrokerNack, OutboxRelay, correlation_id_of


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


def random_text(rnd: random.Random) -> str:
    alphabet = 'ab 掌柜口令店铺号"\\/{}[]:,\n\t\u00e9\U0001f600'
    return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12)))


def random_value(rnd: random.Random, depth: int = 0):
    kinds = ["int", "str", "none", "bool", "float"] + (["list", "dict"] if depth < 3 else [])
    kind = rnd.choice(kinds)
    if kind == "int":
        return rnd.choice([0, -1, 12900, 2**53 + 1, -(2**63)])
    if kind == "str":
        return random_text(rnd)
    if kind == "none":
        return None
    if kind == "bool":
        return rnd.random() < 0.5
    if kind == "float":
        return rnd.choice([0.5, -1e-7, 1e300, 3.0])
    if kind == "list":
        return [random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    keys = ["correlation_id", "data", "id", "type", "n"]
    return {
        rnd.choice(keys + [random_text(rnd)]): random_value(rnd, depth + 1)
        for _ in range(rnd.randint(0, 4))
    }


def random_envelope(rnd: random.Random) -> dict:
    """An envelope as ``UnitOfWork.emit`` builds it, with awkward data and correlation ids."""
    extra = random_value(rnd, 1)
    env = envelope("note_written", {"n": rnd.randint(0, 9), "extra": extra}, "emitter")
    env["correlation_id"] = rnd.choice(
        [None, "", "req-" + random_text(rnd), '"correlation_id": "x"', "掌柜\u00e9"]
    )
    return env


def delivered(publish) -> list:
    """What a consumer of the events exchange receives (through kombu's in-memory transport)
    when ``publish(producer, exchange)`` publishes: (decoded body, headers, raw bytes)."""
    exchange = Exchange("emitter.events", type="topic")
    with Connection("memory://") as connection:
        channel = connection.channel()
        queue = Queue("listener", exchange=exchange, routing_key="#")(channel)
        queue.declare()
        publish(connection.Producer(channel), exchange)
        out = []
        while (message := queue.get(no_ack=True, accept=["application/json"])) is not None:
            out.append((message.payload, message.headers, message.body, message.content_type))
        return out


def test_consumers_receive_the_same_events_from_the_stored_text_as_from_the_parsed_envelope(
    relay,
):
    rnd = random.Random(19)
    payloads = [
        json.dumps(random_envelope(rnd), ensure_ascii=False, default=str) for _ in range(300)
    ]
    with relay.engine.begin() as conn:
        for n, payload in enumerate(payloads):
            conn.execute(
                insert(relay.table).values(
                    event_id=f"ev-{n}",
                    event_type="note_written",
                    payload=payload,
                    created_at=clock.real_now(),
                    attempts=0,
                )
            )
    calls: list[dict] = []
    wire(relay, [("ack", 300, True)])
    relay._producer.publish = lambda body, **kw: calls.append({"body": body, **kw})  # type: ignore[union-attr]
    assert relay.relay_once() == 200 and relay.relay_once() == 100

    def new_path(producer, exchange):  # what the relay now hands kombu, call for call
        for call in calls:
            producer.publish(**{**call, "exchange": exchange})

    def old_path(producer, exchange):  # the relay before: parse, let kombu serialise again
        for payload in payloads:
            env = json.loads(payload)
            headers = {}
            if env.get("correlation_id"):
                headers["nameko.correlation_id"] = env["correlation_id"]
            producer.publish(
                env,
                exchange=exchange,
                routing_key="note_written",
                headers=headers,
                delivery_mode=2,
                serializer="json",
            )

    assert [call["body"] for call in calls] == payloads  # the stored text, not re-serialised
    assert {(c["content_type"], c["content_encoding"]) for c in calls} == {
        ("application/json", "utf-8")
    }
    new, old = delivered(new_path), delivered(old_path)
    assert len(new) == len(old) == 300
    # the same decoded event, headers and content type, message for message
    assert [(body, headers, ctype) for body, headers, _, ctype in new] == [
        (body, headers, ctype) for body, headers, _, ctype in old
    ]
    assert [raw for _, _, raw, _ in new] == [p.encode("utf-8") for p in payloads]


@pytest.mark.parametrize(
    "payload",
    [
        '{"id": "e", "correlation_id": "req-1", "data": {}}',
        '{"id": "e", "correlation_id": null, "data": {"correlation_id": "inner"}}',
        '{"id": "e", "data": {"correlation_id": "inner"}, "correlation_id": "outer"}',
        '{"data": [1, {"correlation_id": "inner"}], "correlation_id": "outer"}',
        '{"id":"e","correlation_id":"compact"}',
        '{"id": "e", "source": "a\\"correlation_id\\": \\"no\\"", "correlation_id": "yes"}',
        '{"id": "e", "data": {"correlation_id": "inner"}}',
        '{"correlation_id": "req-\\u00e9\\"q\\"", "data": {}}',
        '{"correlation_id": 7}',
    ],
)
def test_the_correlation_id_read_from_the_text_is_the_envelopes_own(payload):
    expected = json.loads(payload).get("correlation_id")
    assert correlation_id_of(payload) == (expected if isinstance(expected, str) else None)


# --- packed streams: several events of one type per message ---------------------------------
def add_typed(relay: OutboxRelay, types: list[str]) -> None:
    with relay.engine.begin() as conn:
        for n, event_type in enumerate(types):
            conn.execute(
                insert(relay.table).values(
                    event_id=f"ev-{n}",
                    event_type=event_type,
                    payload=json.dumps({"id": f"ev-{n}", "correlation_id": f"c-{n}", "n": n}),
                    created_at=clock.real_now(),
                    attempts=0,
                )
            )


def packing_relay(relay: OutboxRelay, size: int) -> list[tuple[str, dict]]:
    relay.packed = frozenset({"paid"})
    relay.pack_size = size
    sent: list[tuple[str, dict]] = []
    channel = wire(relay, [])
    relay._producer.publish = lambda body, **kw: sent.append((body, kw))  # type: ignore[union-attr]
    channel.plan = []
    return sent


def test_a_packed_type_goes_out_in_packs_and_the_rest_one_event_per_message(relay):
    add_typed(relay, ["paid", "shipped", "paid", "paid", "paid", "shipped", "paid"])
    sent = packing_relay(relay, size=3)
    relay._producer.channel.plan = [("ack", 4, True)]  # type: ignore[union-attr]
    assert relay.relay_once() == 7
    # in the order of each message's first row; packs of at most 3
    bodies = [(kw["routing_key"], json.loads(body), kw["headers"]) for body, kw in sent]
    assert [
        (key, [e["n"] for e in body] if isinstance(body, list) else body["n"])
        for key, body, _ in bodies
    ] == [
        ("paid", [0, 2, 3]),
        ("shipped", 1),
        ("paid", [4, 6]),
        ("shipped", 5),
    ]
    assert bodies[0][2] == {"x-xiaopu-pack": 3, "nameko.correlation_id": "c-0"}
    assert bodies[1][2] == {"nameko.correlation_id": "c-1"}  # a plain message, as before
    assert all(r.published_at is not None and r.attempts == 1 for r in rows(relay))


def test_a_nacked_pack_keeps_all_its_events_unpublished(relay):
    add_typed(relay, ["paid"] * 5)
    packing_relay(relay, size=3)
    relay._producer.channel.plan = [("nack", 1, False), ("ack", 2, False)]  # type: ignore[union-attr]
    with pytest.raises(BrokerNack):
        relay.relay_once()
    state = {r.event_id: r for r in rows(relay)}
    assert [state[f"ev-{n}"].published_at is None for n in range(5)] == [True] * 3 + [False] * 2
    assert all("refused" in state[f"ev-{n}"].last_error for n in range(3))
