"""One effect per request: the idempotency key of a mutating request, recorded with its outcome.

The gateway gives every mutating request a key — the client's ``Idempotency-Key`` or one it
generates — scoped to the caller, the method and the path (``scoped_key``), and sends it to the
service in the nameko context (``worker_ctx.data["xp_idem"]``, like the correlation id). The
service that owns the effect records key → outcome in its own database, in the transaction of
the effect (table ``idempotency_keys``, ``shared.db.add_platform_tables``)::

    with self.db.unit_of_work() as uow:
        return uow.once(lambda: handlers.shops.open(uow, rules, member_id, body))

``uow.once(fn)`` inserts the key first (on PostgreSQL the INSERT waits for a concurrent,
uncommitted twin and then conflicts); a key already recorded answers its stored outcome without
running ``fn``: a retry, a redelivery after an instance died, the same key through another
gateway or after a restart change nothing. A failure (any exception) rolls the key back with
everything else: only successful outcomes are recorded, so a retry re-evaluates.

The key is consumed by the service that receives it: ``shared.rpc.TimedCalls`` does not pass it
on to the services that one calls (the same key would make every inner call replay the first);
an inner call that changes state carries an id derived from the outer key instead (``derive``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

from kombu.utils.json import dumps, loads
from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, bindparam, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from shared import clock

IDEM_KEY = "xp_idem"  # the worker context entry the key travels in
TABLE = "idempotency_keys"
MAX_CLIENT_KEY = 200


def add_table(metadata: MetaData) -> Table:
    """``idempotency_keys`` as ``shared.migration_ops.create_idempotency_v1`` builds it."""
    return Table(
        TABLE,
        metadata,
        Column("key", String(64), primary_key=True),
        Column("outcome", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )


def scoped_key(role: str, sub: str, method: str, path: str, client_key: str) -> str:
    """The key a service records: the client's key can only ever replay that caller's own
    request to the same method and path."""
    raw = f"{role}:{sub}:{method.upper()}:{path}:{client_key}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def derive(key: str, *parts: object) -> str:
    """An inner effect's id from the outer key: a redelivered request reuses the same effect."""
    raw = ":".join([key, *(str(p) for p in parts)])
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def client_key_problem(value: str) -> str | None:
    """Why a client's ``Idempotency-Key`` header is refused, or None when it is acceptable."""
    if not value.strip():
        return "the Idempotency-Key header is empty"
    if len(value) > MAX_CLIENT_KEY:
        return f"the Idempotency-Key header is longer than {MAX_CLIENT_KEY} characters"
    if not value.isprintable() or not value.isascii():
        return "the Idempotency-Key header must be printable ASCII"
    return None


def key_of(worker_ctx: Any) -> str | None:
    """The idempotency key this worker received, if any."""
    data = getattr(worker_ctx, "data", None)
    value = data.get(IDEM_KEY) if data is not None else None
    return str(value) if value else None


def step_key(key: str | None, step: str | None) -> str | None:
    """The key of one step of a request that commits more than once (``uow.once(fn, step=)``)."""
    return derive(key, step) if key and step else key


def once(session: Session, table: Table, key: str | None, fn: Callable[[], Any]) -> Any:
    """``fn()`` once per ``key`` in this transaction; a recorded key answers its outcome.

    The outcome is returned as it travels (JSON, the way nameko sends it), so the first answer
    and every replay are the same."""
    if not key:
        return fn()
    if not _insert_first(session, table, key):
        stored = session.execute(select(table.c.outcome).where(table.c.key == key)).scalar_one()
        return loads(stored) if stored is not None else None
    encoded = dumps(fn())
    session.execute(_store_outcome(table), {"p_key": key, "p_outcome": encoded})
    return loads(encoded)


def outcome_row(table: Table, key: str, outcome: Any) -> tuple[Any, list[dict]]:
    """The row ``once`` would leave for ``key`` once ``fn`` answered ``outcome``, as a plain
    INSERT and its row — for a transaction that writes it together with its other rows
    (``shared.db.write_rows``) instead of claiming the key first. A key recorded already (or
    being recorded by a racing transaction, which this INSERT waits for) fails the whole
    transaction with a unique violation: roll back and take the ``once`` path, which answers
    the recorded outcome."""
    from sqlalchemy import insert

    row = {"key": key, "outcome": dumps(outcome), "created_at": clock.real_now()}
    return insert(table), [row]


def forget(session: Session, table: Table, key: str | None) -> None:
    """Drop a recorded key (an effect undone in a later transaction: the retry runs afresh)."""
    if key:
        session.execute(table.delete().where(table.c.key == key))


def _insert_first(session: Session, table: Table, key: str) -> bool:
    from shared.db import insert_or_ignore

    stmt = insert_or_ignore(table, session.get_bind().dialect.name)
    result = session.execute(stmt, {"key": key, "outcome": None, "created_at": clock.real_now()})
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


# Built once per table (constructing a statement costs more CPU than running it); parameter
# names no column has (an UPDATE reads a column's name as a value for its SET).
@functools.lru_cache(maxsize=64)
def _store_outcome(table: Table) -> Any:
    return (
        update(table)
        .where(table.c.key == bindparam("p_key", type_=table.c.key.type))
        .values(outcome=bindparam("p_outcome", type_=table.c.outcome.type))
    )
