"""The outbox relay: publishes committed outbox rows to the service's nameko events exchange.

A service writes its state change and its event rows in one local transaction
(``UnitOfWork.emit``). This relay, running inside the same service process, reads unpublished
rows in id order, publishes each to ``<service>.events`` with the event type as routing key (so
ordinary nameko ``@event_handler``s receive them), waits for the broker's publish confirm, and
only then marks the rows published. A crash after commit and before publishing loses nothing:
the rows are still unpublished when the service comes back. A crash after publishing and before
marking publishes them again, which consumers absorb through their inbox (at-least-once).
Failed publishes are retried with a capped exponential back-off; eShop's relay never retries,
ours must.

Confirms once per batch: the relay's channel is in publisher-confirm mode, but it publishes a
whole batch (up to ``BATCH`` rows) and then waits for the broker's acks (RabbitMQ acks
``multiple`` tags at once) — one wait per batch, not one round trip per event (kombu's
``confirm_publish`` transport option waits after every publish). Rows whose publish the broker
acked are marked published; a nacked row keeps its place, with ``attempts`` and ``last_error``,
and is tried again. No ack within ``OUTBOX_CONFIRM_TIMEOUT_SECONDS`` (10) fails the batch: it is
published again after the back-off (duplicates are absorbed by the inboxes). The relay keeps one
connection and one producer for its life (rebuilt only after a failure).

Publishes the stored text as it is: the payload column holds the envelope's JSON (written by
``UnitOfWork.emit``), and it goes to the broker byte for byte as an ``application/json``,
``utf-8`` body — what kombu's ``json`` serializer would have produced from the parsed envelope,
and what a nameko consumer (``serializer`` ``json``) decodes with the same ``json.loads`` into the
same dict. The relay never parses the envelope: the correlation id it copies into the
``nameko.correlation_id`` header is read from the text (``correlation_id_of``).

Packed streams: the event types named in ``OUTBOX_PACKED_EVENTS`` (a service's high-volume
streams, consumed by ``shared.events`` handlers, which unpack them) go out up to
``OUTBOX_PACK_SIZE`` (50) of one type per message: the stored texts joined into a JSON array,
with the ``x-xiaopu-pack`` header — one publish and one confirm, one delivery and one ack per
consumer queue, instead of one of each per event. To let a pack fill, the relay woken by a
commit waits ``OUTBOX_LINGER_SECONDS`` (0.05) before it reads the rows (only when the service
packs anything). Every other type goes out one event per message, as any nameko consumer
expects.

The relay's loop also prunes (``shared.pruning``): between batches it deletes, one bounded batch
at a time, outbox rows published longer ago than the retention and inbox rows processed longer
ago than theirs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time

import eventlet
from amqp import spec
from kombu import Connection, Producer
from nameko.standalone.events import get_event_exchange
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.engine import Engine

from shared import clock
from shared.events import CORRELATION_HEADER, PACK_HEADER
from shared.pg import commit_with_next
from shared.pruning import Pruner
from shared.rules import as_words

log = logging.getLogger(__name__)

BATCH = 200
CONFIRM_TIMEOUT_SECONDS = 10.0
CONTENT_TYPE = "application/json"  # kombu's ``json`` serializer: what nameko consumers accept
CONTENT_ENCODING = "utf-8"
_CORRELATION_KEY = '"correlation_id": '
_DECODER = json.JSONDecoder()


def correlation_id_of(payload: str) -> str | None:
    """The envelope's ``correlation_id`` read from its JSON text without parsing the rest.

    ``UnitOfWork.emit`` writes it (``json.dumps``, default separators) as a top-level key after
    only scalar fields (``shared.db.envelope``). A match of ``"correlation_id": `` in valid JSON
    is always an object key (inside a string its quotes would be escaped), and it is a key of the
    envelope itself when no ``{`` or ``[`` comes before it; any other shape is parsed whole."""
    at = payload.find(_CORRELATION_KEY)
    if at > 0 and payload[0] == "{":
        before = payload[1:at]
        if "{" not in before and "[" not in before:  # only the value is decoded
            value, _ = _DECODER.raw_decode(payload, at + len(_CORRELATION_KEY))
            return value if isinstance(value, str) else None
    value = json.loads(payload).get("correlation_id")
    return value if isinstance(value, str) else None


class BrokerNack(Exception):
    """The broker refused (nacked) a published event."""


class OutboxRelay:
    def __init__(self, service: str, engine: Engine, table: Table, config: dict, write_lock=None):
        self.service = service
        self.engine = engine
        self.table = table
        self.amqp_uri = config["AMQP_URI"]
        self.poll_interval = float(config.get("OUTBOX_POLL_SECONDS", 1.0))
        self.confirm_timeout = float(
            config.get("OUTBOX_CONFIRM_TIMEOUT_SECONDS", CONFIRM_TIMEOUT_SECONDS)
        )
        self.exchange = get_event_exchange(service, config)
        # a YAML list, or a comma-separated string (an environment value)
        self.packed = frozenset(as_words(config.get("OUTBOX_PACKED_EVENTS") or ""))
        self.pack_size = max(1, int(config.get("OUTBOX_PACK_SIZE", 50)))
        self.linger = float(config.get("OUTBOX_LINGER_SECONDS", 0.05)) if self.packed else 0.0
        self._wakeup = threading.Event()
        self.write_lock = write_lock if write_lock is not None else contextlib.nullcontext()
        self._running = True
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._tag = 0  # delivery tag of the last publish on the producer's channel
        self._acked = 0  # every tag up to this one is acked
        self._acked_tags: set[int] = set()
        self._nacked: set[int] = set()
        inbox = table.metadata.tables.get("inbox")
        self.pruner = Pruner(service, engine, table, inbox, config, self.write_lock)
        # the two statements of every pass, built once (a statement built per pass is a
        # cache-key walk each time): the rows to publish, and marking them published
        pending = (
            select(table.c.id, table.c.event_type, table.c.payload)
            .where(table.c.published_at.is_(None))
            .order_by(table.c.id)
            .limit(BATCH)
        )
        if engine.dialect.name == "postgresql":
            pending = pending.with_for_update(skip_locked=True)
        self._pending = pending
        self._published = (
            update(table)
            .where(table.c.id.in_(bindparam("p_ids", expanding=True)))
            .values(
                published_at=bindparam("p_now", type_=table.c.published_at.type),
                attempts=table.c.attempts + 1,
            )
        )

    # lifecycle -------------------------------------------------------------------------------
    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        self._running = False
        self._wakeup.set()
        self._close()

    def run(self) -> None:
        failures = 0
        while self._running:
            try:
                published = self.relay_once()
                failures = 0
            except Exception as exc:  # broker or database trouble: back off, then retry
                failures += 1
                delay = min(30.0, 0.25 * 2 ** min(failures, 7))
                log.warning(
                    "outbox relay of %s failed (%s); retrying in %.1fs", self.service, exc, delay
                )
                self._close()
                eventlet.sleep(delay)
                continue
            more_to_prune = self.pruner.step()
            if published < BATCH and not more_to_prune:
                woken = self._wakeup.wait(min(self.poll_interval, self.pruner.seconds_until_due()))
                self._wakeup.clear()
                if woken and self.linger and self._running:  # let a pack fill
                    eventlet.sleep(self.linger)

    # work ------------------------------------------------------------------------------------
    def relay_once(self) -> int:
        t = self.table
        with self.write_lock, self.engine.begin() as conn:
            rows = conn.execute(self._pending).all()
            if not rows:
                return 0
            units = self._units(rows)
            tags: dict[int, list[int]] = {}  # delivery tag -> the outbox row ids it carries
            try:
                for event_type, unit in units:
                    payloads = [row.payload for row in unit]
                    tag = self._publish(event_type, payloads, event_type in self.packed)
                    tags[tag] = [row.id for row in unit]
                self._await_confirms(max(tags))
            except Exception as exc:
                # what the broker acked is published; the message that failed (or was not
                # confirmed) records why on its rows; the rest stay as they were and come
                # round again
                done = [rid for tag, ids in tags.items() if self._is_acked(tag) for rid in ids]
                failed = [rid for tag, ids in tags.items() if tag in self._nacked for rid in ids]
                if not failed and len(tags) < len(units):  # this message's publish raised
                    failed = [row.id for row in units[len(tags)][1]]
                elif not failed:  # all published, not all confirmed in time
                    failed = next((ids for tag, ids in tags.items() if not self._is_acked(tag)), [])
                if failed:
                    conn.execute(
                        update(t)
                        .where(t.c.id.in_(failed))
                        .values(attempts=t.c.attempts + 1, last_error=str(exc)[:500])
                    )
                if done:
                    conn.execute(
                        update(t).where(t.c.id.in_(done)).values(published_at=clock.real_now())
                    )
                conn.commit()
                raise
            commit_with_next(conn.connection.dbapi_connection)  # the COMMIT goes with it
            conn.execute(
                self._published,
                {"p_ids": [rid for ids in tags.values() for rid in ids], "p_now": clock.real_now()},
            )
        return len(rows)

    def _units(self, rows) -> list[tuple[str, list]]:
        """The messages to publish, in the order of their first row: one per row, except that
        rows of a packed type go together, up to ``pack_size`` per message."""
        units: list[tuple[str, list]] = []
        open_pack: dict[str, list] = {}
        for row in rows:
            if row.event_type not in self.packed:
                units.append((row.event_type, [row]))
                continue
            pack = open_pack.get(row.event_type)
            if pack is None or len(pack) >= self.pack_size:
                pack = open_pack[row.event_type] = []
                units.append((row.event_type, pack))
            pack.append(row)
        return units

    def _publish(self, event_type: str, payloads: list[str], packed: bool) -> int:
        """Publish stored envelopes, their JSON text as is (not waiting for the confirm); the
        message's delivery tag. One envelope, or a pack: the texts joined into a JSON array
        with the ``x-xiaopu-pack`` header. The correlation id header is the (first) envelope's;
        ``shared.events`` gives each event of a pack its own."""
        producer = self._get_producer()
        headers: dict = {PACK_HEADER: len(payloads)} if packed else {}
        correlation_id = correlation_id_of(payloads[0])
        if correlation_id:
            headers[CORRELATION_HEADER] = correlation_id
        # no kombu retry: a reconnect would restart the channel's delivery tags mid-batch; the
        # batch fails instead and is published again after the back-off
        producer.publish(
            "[" + ",".join(payloads) + "]" if packed else payloads[0],
            exchange=self.exchange,
            routing_key=event_type,
            headers=headers,
            delivery_mode=2,
            content_type=CONTENT_TYPE,
            content_encoding=CONTENT_ENCODING,
        )
        self._tag += 1
        return self._tag

    def _is_acked(self, tag: int) -> bool:
        return tag <= self._acked or tag in self._acked_tags

    def _on_ack(self, tag: int, multiple: bool) -> None:
        if multiple:
            self._acked = max(self._acked, tag)
        else:
            self._acked_tags.add(tag)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        first = self._acked + 1 if multiple else tag
        self._nacked.update(range(first, tag + 1))

    def _await_confirms(self, last: int) -> None:
        """Wait until the broker has confirmed every publish up to ``last``; BrokerNack if it
        refused any, TimeoutError after ``confirm_timeout``."""
        assert self._producer is not None
        channel = self._producer.channel
        deadline = time.monotonic() + self.confirm_timeout
        while True:
            pending = [
                tag
                for tag in range(self._acked + 1, last + 1)
                if tag not in self._acked_tags and tag not in self._nacked
            ]
            if not pending:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"the broker did not confirm {len(pending)} published events "
                    f"within {self.confirm_timeout:.0f}s"
                )
            channel.wait([spec.Basic.Ack, spec.Basic.Nack], timeout=left)
        nacked = [tag for tag in range(1, last + 1) if tag in self._nacked]
        if nacked:
            raise BrokerNack(f"the broker refused {len(nacked)} published events")
        # everything up to ``last`` is settled: forget the single tags below it
        self._acked = max(self._acked, last)
        self._acked_tags = {tag for tag in self._acked_tags if tag > last}

    def _get_producer(self) -> Producer:
        if self._producer is None:
            # plain publishes on a channel put in confirm mode by hand: kombu's
            # ``confirm_publish`` would wait after each one
            self._connection = Connection(self.amqp_uri)
            producer = self._connection.Producer(serializer="json")
            channel = producer.channel
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            self.exchange(channel).declare()
            self._tag, self._acked = 0, 0
            self._acked_tags, self._nacked = set(), set()
            self._producer = producer
        return self._producer

    def _close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # already broken; nothing left to release
                log.debug("closing a broken relay connection", exc_info=True)
        self._connection = None
        self._producer = None
