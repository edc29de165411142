"""The event backbone: outbox → RabbitMQ → idempotent inbox, retries and dead letters.

Two small test services stand in for any pair of Xiaopu services: ``emitter`` writes a note and
its ``note_written`` event in one unit of work; ``listener`` records each event it handles.
Both use the real shared machinery, the real RabbitMQ vhost and a real database.
"""

from __future__ import annotations

import json
import time
import uuid

import eventlet
import pytest
from nameko.rpc import rpc
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text

from shared.contracts.events import EVENTS, EventData
from shared.db import Database, add_platform_tables
from shared.dlq import dead_queues, drain
from shared.events import batch_event_handler, event_handler
from shared.logs import Correlation
from shared.testing import wait_drained, wait_for

emitter_md = MetaData()
add_platform_tables(emitter_md)
notes = Table(
    "notes",
    emitter_md,
    Column("id", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
)

listener_md = MetaData()
add_platform_tables(listener_md)
received = Table(
    "received",
    listener_md,
    Column("id", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
    Column("event_id", String(36)),
    Column("batch", Integer, nullable=True),  # how many events the batch handler was given
)

FAIL_FOR: set[int] = set()


class NoteWritten(EventData):
    """The test emitter's event (``uow.emit`` takes contract models only)."""

    n: int
    note: str = ""


@pytest.fixture(autouse=True)
def _note_written_contract(monkeypatch):
    """Registers the test-only event type for the duration of a test."""
    monkeypatch.setitem(EVENTS, "note_written", NoteWritten)


class Emitter:
    name = "emitter"
    db = Database(emitter_md)

    @rpc
    def write(self, n: int) -> None:
        with self.db.unit_of_work() as uow:
            uow.session.execute(notes.insert().values(n=n))
            uow.emit("note_written", NoteWritten(n=n))

    @rpc
    def write_many(self, start: int, count: int) -> None:
        with self.db.unit_of_work() as uow:
            for n in range(start, start + count):
                uow.session.execute(notes.insert().values(n=n))
                uow.emit("note_written", NoteWritten(n=n))

    @rpc
    def overlap_probe(self, seconds: float) -> list[float]:
        with self.db.read() as session:
            started = time.time()
            session.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})
            return [started, time.time()]


class Listener:
    name = "listener"
    db = Database(listener_md)

    @event_handler("emitter", "note_written")
    def on_note_written(self, event):
        with self.db.unit_of_work() as uow:
            if not uow.claim(event, "on_note_written"):
                return
            n = event["data"]["n"]
            if n in FAIL_FOR:
                raise RuntimeError(f"cannot handle note {n} yet")
            uow.session.execute(received.insert().values(n=n, event_id=event["id"]))
            eventlet.sleep(0.02)  # a slow effect: keeps events in flight when we kill it


class TracedEmitter:
    """The emitter with the correlation id every service carries (``shared.logs``)."""

    name = "emitter"
    db = Database(emitter_md)
    correlation = Correlation()

    @rpc
    def write(self, n: int, note: str) -> None:
        with self.db.unit_of_work() as uow:
            uow.session.execute(notes.insert().values(n=n))
            uow.emit("note_written", NoteWritten(n=n, note=note))


SEEN: list[tuple[dict, str | None]] = []


class TracedListener:
    """Keeps each event as it arrived and the correlation id its worker ran with."""

    name = "listener"
    correlation = Correlation()

    @event_handler("emitter", "note_written")
    def on_note_written(self, event):
        SEEN.append((event, self.correlation))


class BatchListener:
    """The listener as a batched consumer (``batch_event_handler``): one unit of work per
    batch, claimed per event."""

    name = "listener"
    db = Database(listener_md)

    @batch_event_handler("emitter", "note_written")
    def on_note_written(self, events):
        with self.db.unit_of_work() as uow:
            fresh = uow.claim_all(events, "on_note_written")
            for event in fresh:
                n = event["data"]["n"]
                if n in FAIL_FOR:
                    raise RuntimeError(f"cannot handle note {n} yet")
                uow.session.execute(
                    received.insert().values(n=n, event_id=event["id"], batch=len(events))
                )
            eventlet.sleep(0.02)  # a slow effect: keeps events in flight when we kill it


@pytest.fixture
def databases(make_database):
    urls = {}
    for name, md in (("emitter", emitter_md), ("listener", listener_md)):
        url = make_database("outbox", migrate=False)
        from shared.db import make_engine

        engine = make_engine(url)
        md.create_all(engine)  # test-only tables; real services migrate with Alembic
        engine.dispose()
        urls[name] = url
    return urls


@pytest.fixture
def config_for(rabbit_config, databases):
    def make(service: str, **extra) -> dict:
        return {
            "AMQP_URI": rabbit_config["AMQP_URI"],
            "DATABASE_URL": databases[service],
            "OUTBOX_POLL_SECONDS": 0.2,
            "XIAOPU_EVENT_MAX_ATTEMPTS": 3,
            **extra,
        }

    return make


def unpublished(url: str) -> int:
    """The emitter's outbox rows its relay has not published yet."""
    from shared.db import make_engine

    outbox = emitter_md.tables["outbox"]
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            ).scalar_one()
    finally:
        engine.dispose()


def count_received(url: str) -> tuple[int, int]:
    from shared.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(received)).scalar_one()
            distinct = conn.execute(select(func.count(func.distinct(received.c.n)))).scalar_one()
            return total, distinct
    finally:
        engine.dispose()


def through_a_consumer_restart(
    container_factory,
    config_for,
    databases,
    rabbit_config,
    consumer,
    emitter_config: dict,
    total: int = 300,
    ignore=lambda q: q.endswith((".dead", ".retry")),
) -> None:
    """``total`` events written at once; the consumer killed while they are in flight, then
    started again; returns when every event arrived and nothing is left to publish, queued or
    unacknowledged (any redelivery has landed)."""
    listener = container_factory(consumer, config_for("listener"))
    listener.start()
    emitter = container_factory(Emitter, emitter_config)
    emitter.start()
    with ClusterRpcProxy(config_for("emitter")) as cluster:
        cluster.emitter.write_many(0, total)
    # stop the consumer abruptly while events are still in flight (not acknowledged: they
    # are delivered again) ...
    wait_for(lambda: count_received(databases["listener"])[0] >= 10, timeout=30, interval=0.01)
    listener.kill()
    in_between = count_received(databases["listener"])[0]
    assert in_between < total, "the consumer should have been stopped mid-stream"
    # ... and start it again
    restarted = container_factory(consumer, config_for("listener"))
    restarted.start()
    wait_for(lambda: count_received(databases["listener"])[0] >= total)
    wait_drained(
        rabbit_config["vhost"], backlogs=lambda: unpublished(databases["emitter"]), ignore=ignore
    )


def test_events_are_handled_exactly_once_across_a_consumer_restart(
    container_factory, config_for, databases, rabbit_config
):
    through_a_consumer_restart(
        container_factory, config_for, databases, rabbit_config, Listener, config_for("emitter")
    )
    # everything arrived, nothing twice
    assert count_received(databases["listener"]) == (300, 300)


def outbox_payloads(url: str) -> list[str]:
    from shared.db import make_engine

    outbox = emitter_md.tables["outbox"]
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(outbox.c.payload).order_by(outbox.c.id)).scalars())
    finally:
        engine.dispose()


def test_a_consumer_gets_the_stored_envelope_and_the_request_correlation_id(
    container_factory, config_for, databases
):
    SEEN.clear()
    container_factory(TracedListener, config_for("listener")).start()
    container_factory(TracedEmitter, config_for("emitter")).start()
    notes_written = [
        "掌柜 口令 店铺号",
        'quotes " and \\ and {"correlation_id": "x"}',
        "\U0001f600",
    ]
    for n, note in enumerate(notes_written):
        with ClusterRpcProxy(
            config_for("emitter"), context_data={"correlation_id": f"req-{n}"}
        ) as cluster:
            cluster.emitter.write(n, note)
    wait_for(lambda: len(SEEN) >= len(notes_written))
    stored = [json.loads(payload) for payload in outbox_payloads(databases["emitter"])]
    seen = sorted(SEEN, key=lambda item: item[0]["data"]["n"])
    assert seen == [(envelope, f"req-{n}") for n, envelope in enumerate(stored)]
    assert [envelope["data"]["note"] for envelope, _ in seen] == notes_written


def largest_batch(url: str) -> int:
    from shared.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.max(received.c.batch))).scalar_one() or 0
    finally:
        engine.dispose()


def test_batched_events_are_handled_exactly_once_across_a_consumer_restart(
    container_factory, config_for, databases, rabbit_config
):
    through_a_consumer_restart(
        container_factory,
        config_for,
        databases,
        rabbit_config,
        BatchListener,
        config_for("emitter"),
    )
    assert count_received(databases["listener"]) == (300, 300)
    assert largest_batch(databases["listener"]) > 1  # they did come in batches


def parked_alone(
    container_factory, config_for, databases, rabbit_config, consumer, emitter_config: dict
) -> None:
    """Events 95..104 written at once, 99 failing every time: 99 is retried, then parked by
    itself (its retries capped at 3), and the other nine are handled."""
    listener = container_factory(consumer, config_for("listener"))
    listener.start()
    emitter = container_factory(Emitter, emitter_config)
    emitter.start()
    with ClusterRpcProxy(config_for("emitter")) as cluster:
        cluster.emitter.write_many(95, 10)  # 95..104, 99 among them
    wait_for(lambda: count_received(databases["listener"])[0] >= 9)
    amqp = rabbit_config["AMQP_URI"]
    parked = wait_for(
        lambda: [q for q in dead_queues(amqp) if q.get("messages", 0) >= 1],
        timeout=30,
        interval=0.5,
    )
    listed = drain(amqp, parked[0]["name"], replay=False)
    assert [(m["type"], m["attempts"]) for m in listed] == [("note_written", 3)]
    assert "cannot handle note 99" in listed[0]["error"]
    assert count_received(databases["listener"]) == (9, 9)


def test_an_event_that_fails_in_a_batch_is_retried_and_parked_alone(
    container_factory, config_for, databases, rabbit_config
):
    FAIL_FOR.add(99)
    try:  # the ten in one batch
        parked_alone(
            container_factory,
            config_for,
            databases,
            rabbit_config,
            BatchListener,
            config_for("emitter"),
        )
    finally:
        FAIL_FOR.clear()


def test_a_redelivered_event_changes_nothing(
    container_factory, config_for, databases, rabbit_config
):
    listener = container_factory(Listener, config_for("listener"))
    listener.start()
    envelope = {
        "id": str(uuid.uuid4()),
        "type": "note_written",
        "version": 1,
        "source": "emitter",
        "occurred_at": "2026-11-24T00:00:00Z",
        "data": {"n": 7},
    }
    dispatch = event_dispatcher(config_for("listener"))
    for _ in range(3):
        dispatch("emitter", "note_written", envelope)
    wait_for(lambda: count_received(databases["listener"])[0] >= 1)
    wait_drained(rabbit_config["vhost"])  # all three copies were delivered and acknowledged
    assert count_received(databases["listener"]) == (1, 1)


def test_killing_the_publisher_between_commit_and_relay_still_delivers(
    container_factory, config_for, databases, rabbit_config
):
    listener = container_factory(Listener, config_for("listener"))
    listener.start()
    # the publisher commits its notes and events, then dies before its relay publishes them
    dying = container_factory(Emitter, config_for("emitter", OUTBOX_RELAY_ENABLED=0))
    dying.start()
    with ClusterRpcProxy(config_for("emitter")) as cluster:
        for n in range(20):
            cluster.emitter.write(n)
    dying.kill()
    wait_drained(rabbit_config["vhost"])  # nothing in flight ...
    assert unpublished(databases["emitter"]) == 20  # ... the 20 events are committed ...
    assert count_received(databases["listener"]) == (0, 0)  # ... and none was delivered
    # after a restart the relay finds the committed, unpublished rows and delivers them
    revived = container_factory(Emitter, config_for("emitter"))
    revived.start()
    wait_for(lambda: count_received(databases["listener"])[0] >= 20)
    wait_drained(rabbit_config["vhost"], backlogs=lambda: unpublished(databases["emitter"]))
    assert count_received(databases["listener"]) == (20, 20)


def test_a_failing_handler_is_retried_then_parked_and_can_be_replayed(
    container_factory, config_for, databases, rabbit_config
):
    FAIL_FOR.add(99)
    try:
        listener = container_factory(Listener, config_for("listener"))
        listener.start()
        emitter = container_factory(Emitter, config_for("emitter"))
        emitter.start()
        with ClusterRpcProxy(config_for("emitter")) as cluster:
            cluster.emitter.write(1)
            cluster.emitter.write(99)
        wait_for(lambda: count_received(databases["listener"])[0] >= 1)
        amqp = rabbit_config["AMQP_URI"]
        parked = wait_for(
            lambda: [q for q in dead_queues(amqp) if q.get("messages", 0) >= 1],
            timeout=30,
            interval=0.5,
        )
        assert parked[0]["name"] == "evt-emitter-note_written--listener.on_note_written.dead"
        listed = drain(amqp, parked[0]["name"], replay=False)
        assert [(m["type"], m["attempts"]) for m in listed] == [("note_written", 3)]
        assert "cannot handle note 99" in listed[0]["error"]
        assert count_received(databases["listener"]) == (1, 1)
        # the operator fixes the cause and replays the parked event
        FAIL_FOR.clear()
        replayed = drain(amqp, parked[0]["name"], replay=True)
        assert len(replayed) == 1
        wait_for(lambda: count_received(databases["listener"])[0] >= 2)
        assert count_received(databases["listener"]) == (2, 2)
    finally:
        FAIL_FOR.clear()


@pytest.mark.postgres_only
def test_concurrent_slow_postgres_queries_overlap(container_factory, config_for):
    """A full eventlet.monkey_patch() makes psycopg2 cooperative: four 0.5 s queries in one
    service process run at the same time instead of one after another."""
    emitter = container_factory(Emitter, config_for("emitter"))
    emitter.start()
    config = config_for("emitter")

    def probe(_):
        with ClusterRpcProxy(config) as cluster:  # one proxy per green thread
            return cluster.emitter.overlap_probe(0.5)

    intervals = list(eventlet.GreenPool(4).imap(probe, range(4)))
    latest_start = max(start for start, _ in intervals)
    earliest_end = min(end for _, end in intervals)
    assert latest_start < earliest_end, f"queries ran one after another: {intervals}"


# --- packed streams (OUTBOX_PACKED_EVENTS): several events per message ----------------------
def packing(**extra) -> dict:
    return {"OUTBOX_PACKED_EVENTS": "note_written", "OUTBOX_PACK_SIZE": 7, **extra}


class Tap:
    """A queue of its own on the emitter's events exchange: what went over the wire."""

    def __init__(self, amqp_uri: str):
        from kombu import Connection, Queue
        from nameko.standalone.events import get_event_exchange

        self.connection = Connection(amqp_uri)
        exchange = get_event_exchange("emitter", {})
        self.queue = Queue(
            f"tap-{uuid.uuid4().hex[:8]}", exchange=exchange, routing_key="note_written"
        )
        self.queue(self.connection.default_channel).declare()

    def messages(self) -> list[tuple[object, dict]]:
        """[(body, headers)] of every message published meanwhile; deletes the queue."""
        bound = self.queue(self.connection.default_channel)
        out = []
        while (message := bound.get(no_ack=True)) is not None:
            out.append((json.loads(message.body), dict(message.headers or {})))
        bound.delete()
        self.connection.release()
        return out


@pytest.mark.parametrize("consumer", [Listener, BatchListener], ids=["one-by-one", "batched"])
def test_packed_events_are_handled_exactly_once_across_a_consumer_restart(
    consumer, container_factory, config_for, databases, rabbit_config
):
    tap = Tap(rabbit_config["AMQP_URI"])
    total = 300
    # packs in flight, partly handled when the consumer is killed: delivered again
    through_a_consumer_restart(
        container_factory,
        config_for,
        databases,
        rabbit_config,
        consumer,
        config_for("emitter", **packing()),
        total,
        ignore=lambda q: q.startswith("tap-"),
    )
    assert count_received(databases["listener"]) == (total, total)
    # over the wire: packs of at most 7, every event once, in the order written
    sent = tap.messages()
    assert all(headers.get("x-xiaopu-pack") == len(body) for body, headers in sent)
    assert max(len(body) for body, _ in sent) == 7
    assert len(sent) < total
    assert [event["data"]["n"] for body, _ in sent for event in body] == list(range(total))


@pytest.mark.parametrize("consumer", [Listener, BatchListener], ids=["one-by-one", "batched"])
def test_an_event_that_fails_in_a_pack_is_retried_and_parked_alone(
    consumer, container_factory, config_for, databases, rabbit_config
):
    FAIL_FOR.add(99)
    try:
        tap = Tap(rabbit_config["AMQP_URI"])
        # parked alone, as an event of its own (not its pack)
        parked_alone(
            container_factory,
            config_for,
            databases,
            rabbit_config,
            consumer,
            config_for("emitter", **packing()),
        )
        # the packs themselves were acknowledged: nothing waits or is unacknowledged
        wait_drained(
            rabbit_config["vhost"],
            backlogs=lambda: unpublished(databases["emitter"]),
            ignore=lambda q: q.startswith("tap-") or q.endswith(".dead"),
        )
        assert [len(body) for body, _ in tap.messages()] == [7, 3]
    finally:
        FAIL_FOR.clear()


def test_each_event_of_a_pack_keeps_its_own_correlation_id(
    container_factory, config_for, databases, rabbit_config
):
    SEEN.clear()
    tap = Tap(rabbit_config["AMQP_URI"])
    container_factory(TracedListener, config_for("listener")).start()
    # a long linger: the three writes below go out in one pack
    emitter = container_factory(
        TracedEmitter, config_for("emitter", **packing(OUTBOX_LINGER_SECONDS=1.5))
    )
    emitter.start()
    for n in range(3):  # three requests, each with its correlation id, within the linger
        with ClusterRpcProxy(
            config_for("emitter"), context_data={"correlation_id": f"req-{n}"}
        ) as cluster:
            cluster.emitter.write(n, f"note {n}")
    wait_for(lambda: len(SEEN) >= 3)
    stored = [json.loads(payload) for payload in outbox_payloads(databases["emitter"])]
    seen = sorted(SEEN, key=lambda item: item[0]["data"]["n"])
    assert [envelope for envelope, _ in seen] == stored
    assert [cid for _, cid in seen] == ["req-0", "req-1", "req-2"]
    assert [len(body) for body, _ in tap.messages()] == [3]  # and they did travel together
