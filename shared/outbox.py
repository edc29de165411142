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
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading

import eventlet
from kombu import Connection, Producer
from nameko.standalone.events import get_event_exchange
from sqlalchemy import Table, select, update
from sqlalchemy.engine import Engine

from shared import clock

log = logging.getLogger(__name__)

BATCH = 200


class OutboxRelay:
    def __init__(self, service: str, engine: Engine, table: Table, config: dict, write_lock=None):
        self.service = service
        self.engine = engine
        self.table = table
        self.amqp_uri = config["AMQP_URI"]
        self.poll_interval = float(config.get("OUTBOX_POLL_SECONDS", 1.0))
        self.exchange = get_event_exchange(service, config)
        self._wakeup = threading.Event()
        self.write_lock = write_lock if write_lock is not None else contextlib.nullcontext()
        self._running = True
        self._connection: Connection | None = None
        self._producer: Producer | None = None

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
            if published < BATCH:
                self._wakeup.wait(self.poll_interval)
                self._wakeup.clear()

    # work ------------------------------------------------------------------------------------
    def relay_once(self) -> int:
        t = self.table
        with self.write_lock, self.engine.begin() as conn:
            query = (
                select(t.c.id, t.c.event_type, t.c.payload)
                .where(t.c.published_at.is_(None))
                .order_by(t.c.id)
                .limit(BATCH)
            )
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = conn.execute(query).all()
            if not rows:
                return 0
            done = []
            try:
                for row in rows:
                    self._publish(row.event_type, json.loads(row.payload))
                    done.append(row.id)
            except Exception as exc:
                failed = rows[len(done)].id
                conn.execute(
                    update(t)
                    .where(t.c.id == failed)
                    .values(attempts=t.c.attempts + 1, last_error=str(exc)[:500])
                )
                if done:
                    conn.execute(
                        update(t).where(t.c.id.in_(done)).values(published_at=clock.real_now())
                    )
                conn.commit()
                raise
            conn.execute(
                update(t)
                .where(t.c.id.in_(done))
                .values(published_at=clock.real_now(), attempts=t.c.attempts + 1)
            )
        return len(rows)

    def _publish(self, event_type: str, envelope: dict) -> None:
        producer = self._get_producer()
        headers = {}
        if envelope.get("correlation_id"):
            headers["nameko.correlation_id"] = envelope["correlation_id"]
        producer.publish(
            envelope,
            exchange=self.exchange,
            routing_key=event_type,
            headers=headers,
            delivery_mode=2,
            serializer="json",
            retry=True,
            retry_policy={
                "max_retries": 3,
                "interval_start": 0.2,
                "interval_step": 0.5,
                "interval_max": 2,
            },
        )

    def _get_producer(self):
        if self._producer is None:
            self._connection = Connection(
                self.amqp_uri, transport_options={"confirm_publish": True}
            )
            self._producer = self._connection.Producer(serializer="json")
            self.exchange(self._producer.channel).declare()
        return self._producer

    def _close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # already broken; nothing left to release
                log.debug("closing a broken relay connection", exc_info=True)
        self._connection = None
        self._producer = None
