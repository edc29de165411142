"""Posting balanced entries, and the order facts every event handler merges into.

The journal is append-only: ``post`` writes an entry's postings once (a second post of the
same ``entry_id`` is a no-op), ``post_many`` writes many fresh entries in one statement. The
order facts row (``order_facts``) records what the events said about an order and how much of
it the journal already holds; ``facts`` returns it created and locked, so every handler can
merge its fact and post only the difference.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, Table, bindparam, func, insert, select
from sqlalchemy.orm import Session

from payouts import domain
from payouts.domain import Entry
from payouts.models import JournalPosting, LevelHistory, OrderFacts
from shared import clock
from shared.db import insert_or_ignore

J: Table = JournalPosting.__table__  # type: ignore[assignment]
F: Table = OrderFacts.__table__  # type: ignore[assignment]
JOURNAL_COLUMNS = ["entry_id", "kind", "account", "party_id", "order_id", "amount_fen", "posted_at"]

FRESH_FACTS: dict[str, Any] = {
    "accrued": False,
    "self_referral": False,
    "paid_fen": 0,
    "commission_bps": 0,
    "bonus_bps": 0,
    "commission_fen": 0,
    "fee_fen": 0,
    "supplier_fen": 0,
    "refunded_total_fen": 0,
    "reversed_commission_fen": 0,
    "reversed_fee_fen": 0,
    "reversed_supplier_fen": 0,
    "settled_commission_fen": 0,
    "settled_sales_fen": 0,
}


def utc(dt: datetime | str) -> datetime:
    """An instant from an event (ISO text) or a column (SQLite hands back naive UTC)."""
    return clock.parse(dt).astimezone(clock.UTC)


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def insert_ignoring_conflicts(session: Session, table: Table) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` of the session's dialect."""
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def run_lock(session: Session, key: int) -> None:
    """Serialise runs of one kind on PostgreSQL (SQLite serialises writers anyway)."""
    if is_postgres(session):
        session.execute(select(func.pg_advisory_xact_lock(key)))


def rows_of(e: Entry, at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "entry_id": e.entry_id,
            "kind": e.kind,
            "account": p.account,
            "party_id": p.party_id,
            "order_id": e.order_id,
            "amount_fen": p.amount_fen,
            "posted_at": at,
        }
        for p in e.postings
    ]


def post(session: Session, e: Entry, at: datetime) -> bool:
    """Append one balanced entry (once: a second post of the same ``entry_id`` is a no-op)."""
    if not e.postings:
        return False
    exists = session.execute(select(J.c.id).where(J.c.entry_id == e.entry_id).limit(1)).first()
    if exists:
        return False
    session.execute(insert(J), rows_of(e, at))
    return True


def post_many(session: Session | Connection, entries: Iterable[tuple[Entry, datetime]]) -> int:
    """Append entries known to be new (their ``entry_id`` carries a fresh row id) in one
    multi-row INSERT; returns how many postings were written."""
    rows = [row for e, at in entries for row in rows_of(e, at)]
    if rows:
        session.execute(insert(J), rows)
    return len(rows)


def facts(session: Session, order_id: int) -> OrderFacts:
    """The order's facts row, created if new, locked for this transaction."""
    values = {"order_id": order_id, **FRESH_FACTS}
    session.execute(insert_or_ignore(F, session.get_bind().dialect.name), values)
    row = session.get(OrderFacts, order_id, with_for_update=True, populate_existing=True)
    assert row is not None  # inserted just above
    return row


def level_history(session: Session, shop_ids: Iterable[int]) -> dict[int, list[domain.Change]]:
    """Each shop's level changes as ``(effective_at, id, bonus_bps)``, for ``bonus_in_force``."""
    out: dict[int, list[domain.Change]] = {}
    ids = list(shop_ids)
    if not ids:
        return out
    for shop, at, hid, bonus in session.execute(
        select(
            LevelHistory.shop_id, LevelHistory.effective_at, LevelHistory.id, LevelHistory.bonus_bps
        ).where(LevelHistory.shop_id.in_(ids))
    ):
        out.setdefault(shop, []).append((utc(at), hid, int(bonus)))
    return out


def _latest_level_change(shop_id: Any, at: Any, *columns: Any) -> Select:
    """The shop's latest level change at or before ``at`` (``domain.bonus_in_force``'s pick)."""
    return (
        select(*columns)
        .where(LevelHistory.shop_id == shop_id, LevelHistory.effective_at <= at)
        .order_by(LevelHistory.effective_at.desc(), LevelHistory.id.desc())
        .limit(1)
    )


def bonus_at(session: Session, shop_id: int, at: datetime) -> int:
    """The keeper's level bonus in force at ``at`` (``domain.bonus_in_force``)."""
    latest = session.execute(
        _latest_level_change(
            shop_id, at, LevelHistory.effective_at, LevelHistory.id, LevelHistory.bonus_bps
        )
    ).all()
    return domain.bonus_in_force([(utc(a), i, int(b)) for a, i, b in latest], at)


def bonus_change_at() -> Any:
    """SQL: the ``bonus_bps`` of the level change ``bonus_at`` picks for the binds ``shop_id``
    and ``paid_at``, NULL before any (the newcomer's bonus: ``domain.bonus_in_force`` of no
    change) — a column of a larger read."""
    return (
        _latest_level_change(bindparam("shop_id"), bindparam("paid_at"), LevelHistory.bonus_bps)
        .correlate(None)
        .scalar_subquery()
    )


def _dialect(session: Session | Connection) -> str:
    return session.get_bind().dialect.name if isinstance(session, Session) else session.dialect.name


def insert_fresh_facts(session: Session | Connection, values: dict[str, Any]) -> bool:
    """Create the order's facts row with these values unless it exists (``facts`` would
    create it empty): True when this call created it. The row is then this transaction's
    (a concurrent insert of the same order waits for it)."""
    row = {**FRESH_FACTS, **values}
    stmt = insert_or_ignore(F, _dialect(session), returning="order_id")
    return session.execute(stmt, row).first() is not None
