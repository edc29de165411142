"""Pruning the outbox and the inbox, so neither grows forever.

Every service's outbox relay (``shared.outbox``) runs a ``Pruner`` (so a process whose relay is
off, ``OUTBOX_RELAY_ENABLED=0``, does not prune either): once per
``PRUNE_INTERVAL_SECONDS`` (3600) it deletes, ``PRUNE_BATCH`` (1000) rows per transaction and one
batch between two relay rounds, until nothing old is left:

* outbox rows published more than ``OUTBOX_RETENTION_DAYS`` (7) ago. An unpublished row is never
  deleted, however old: it is an event still owed to the other services;
* inbox rows processed more than ``INBOX_RETENTION_DAYS`` (7) ago.

Each setting is read from the service's config, else the environment, else the default above.
Both ages are measured on the real clock (``clock.real_now``, as the rows' timestamps are), not
the test clock.

Why an inbox row may go after ``INBOX_RETENTION_DAYS``: it exists to recognise a delivery of an
event the handler already processed. Such a redelivery comes from

1. the broker (a message unacked when a consumer died): within seconds;
2. the outbox relay publishing a batch again (a crash or a lost confirm after the publish and
   before the rows were marked): within the relay's back-off, seconds to a minute;
3. the retry queue (``shared.events``): only for deliveries whose handler *failed*, so it rolled
   back and wrote no inbox row — but a duplicate copy (case 2) can fail while the first copy
   succeeded, and it is retried until ``XIAOPU_EVENT_RETRY_HORIZON_SECONDS`` (1 h) after its
   first failure, then parked;
4. an operator replaying a parked copy (``python -m shared.dlq replay``), or re-publishing
   outbox rows after restoring a service's database from a backup: as late as the oldest
   message parked or the oldest outbox row kept.

So an inbox row must outlive the retry horizon, and the outbox retention (a re-published outbox
row must still find its inbox row). ``Retention.from_config`` refuses a configuration where
``INBOX_RETENTION_DAYS`` is shorter than either. The remaining gap is case 4 for parked messages:
a parked copy of an already-processed event replayed more than ``INBOX_RETENTION_DAYS`` after it
was processed would be processed again; the runbook says to replay parked messages within the
retention (7 days by default) or to raise it first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Table, delete, select, tuple_
from sqlalchemy.engine import Engine

from shared import clock

log = logging.getLogger(__name__)

OUTBOX_RETENTION_DAYS = 7.0
INBOX_RETENTION_DAYS = 7.0
PRUNE_INTERVAL_SECONDS = 3600.0
PRUNE_BATCH = 1000
RETRY_HORIZON_SECONDS = 3600.0  # shared.events' default XIAOPU_EVENT_RETRY_HORIZON_SECONDS


@dataclass(frozen=True)
class Retention:
    outbox_days: float = OUTBOX_RETENTION_DAYS
    inbox_days: float = INBOX_RETENTION_DAYS
    interval_seconds: float = PRUNE_INTERVAL_SECONDS
    batch: int = PRUNE_BATCH

    @classmethod
    def from_config(cls, config: dict) -> "Retention":
        def number(key: str, default: float) -> float:
            # the service's config.yml first, then the environment (these keys are the same
            # for every service, so no config.yml has to repeat them), then the default
            raw = config.get(key)
            if raw in (None, ""):
                raw = os.environ.get(key)
            return float(raw) if raw not in (None, "") else default

        retention = cls(
            outbox_days=number("OUTBOX_RETENTION_DAYS", OUTBOX_RETENTION_DAYS),
            inbox_days=number("INBOX_RETENTION_DAYS", INBOX_RETENTION_DAYS),
            interval_seconds=number("PRUNE_INTERVAL_SECONDS", PRUNE_INTERVAL_SECONDS),
            batch=int(number("PRUNE_BATCH", PRUNE_BATCH)),
        )
        horizon = number("XIAOPU_EVENT_RETRY_HORIZON_SECONDS", RETRY_HORIZON_SECONDS)
        if retention.outbox_days <= 0 or retention.batch <= 0 or retention.interval_seconds <= 0:
            raise ValueError(
                "OUTBOX_RETENTION_DAYS, PRUNE_BATCH and PRUNE_INTERVAL_SECONDS must be positive"
            )
        if retention.inbox_days < retention.outbox_days or retention.inbox_days * 86400 < horizon:
            raise ValueError(
                f"INBOX_RETENTION_DAYS ({retention.inbox_days}) must be at least "
                f"OUTBOX_RETENTION_DAYS ({retention.outbox_days}) and the event retry horizon "
                f"({horizon:.0f}s): an inbox row must outlive every redelivery of its event"
            )
        return retention


def prune_outbox_batch(engine: Engine, outbox: Table, retention: Retention) -> int:
    """Delete up to ``retention.batch`` outbox rows published before the retention; the count."""
    cutoff = clock.real_now() - timedelta(days=retention.outbox_days)
    old = (
        select(outbox.c.id)
        .where(outbox.c.published_at.is_not(None), outbox.c.published_at < cutoff)
        .order_by(outbox.c.id)
        .limit(retention.batch)
    )
    with engine.begin() as conn:
        ids = list(conn.execute(old).scalars())
        if ids:
            conn.execute(delete(outbox).where(outbox.c.id.in_(ids)))
    return len(ids)


def prune_inbox_batch(engine: Engine, inbox: Table, retention: Retention) -> int:
    """Delete up to ``retention.batch`` inbox rows processed before the retention; the count."""
    cutoff = clock.real_now() - timedelta(days=retention.inbox_days)
    old = (
        select(inbox.c.event_id, inbox.c.handler)
        .where(inbox.c.processed_at < cutoff)
        .limit(retention.batch)
    )
    with engine.begin() as conn:
        keys = [tuple(row) for row in conn.execute(old)]
        if keys:
            conn.execute(delete(inbox).where(tuple_(inbox.c.event_id, inbox.c.handler).in_(keys)))
    return len(keys)


class Pruner:
    """Called by the relay between rounds: ``step()`` does at most one batch of deletes when
    pruning is due and says whether more is left (the relay then comes back without waiting)."""

    def __init__(
        self,
        service: str,
        engine: Engine,
        outbox: Table,
        inbox: Table | None,
        config: dict,
        write_lock=None,
    ):
        self.service = service
        self.engine = engine
        self.outbox = outbox
        self.inbox = inbox
        self.retention = Retention.from_config(config)
        self.write_lock = write_lock if write_lock is not None else contextlib.nullcontext()
        self.due_at = time.monotonic()  # a first pass soon after start
        self._pending = ["outbox", "inbox"] if inbox is not None else ["outbox"]
        self.deleted = {"outbox": 0, "inbox": 0}

    def seconds_until_due(self) -> float:
        return max(0.0, self.due_at - time.monotonic())

    def step(self) -> bool:
        """One batch if due; True when the current pass has more to delete."""
        if time.monotonic() < self.due_at:
            return False
        table = self._pending[0]
        try:
            with self.write_lock:
                if table == "outbox":
                    count = prune_outbox_batch(self.engine, self.outbox, self.retention)
                else:
                    assert self.inbox is not None
                    count = prune_inbox_batch(self.engine, self.inbox, self.retention)
        except Exception as exc:  # the database is away: try again at the next interval
            log.warning("pruning the %s of %s failed: %s", table, self.service, exc)
            self._finish_pass()
            return False
        self.deleted[table] += count
        if count >= self.retention.batch:
            return True
        self._pending.pop(0)
        if self._pending:
            return True
        self._finish_pass()
        return False

    def _finish_pass(self) -> None:
        if self.deleted["outbox"] or self.deleted["inbox"]:
            log.info(
                "pruned %d outbox and %d inbox rows of %s",
                self.deleted["outbox"],
                self.deleted["inbox"],
                self.service,
            )
        self.deleted = {"outbox": 0, "inbox": 0}
        self._pending = ["outbox", "inbox"] if self.inbox is not None else ["outbox"]
        self.due_at = time.monotonic() + self.retention.interval_seconds
