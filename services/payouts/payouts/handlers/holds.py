"""Holds: why an order's accrual may not settle, or be paid, yet (decisions.md "Money holds").

THE hold mechanism of payouts: every reason goes through these functions and the one table
``accrual_holds`` (``models.AccrualHold``). A hold is a row: the order (and its shop), a reason
(``domain.REFUND_OPEN``, ``fraud:<rule>``, ``suspended``), a ``ref`` telling holds of one reason
apart (a refund's id; empty otherwise), a ``detail`` saying what matched, when it was placed,
and — once released — when, with which decision, by whom and why. Rows are never deleted, so
every decision stays in the ledger's history.

* An order with an open hold does not settle (``not_held`` in the settlement UPDATE).
* An order that settled before a hold was placed keeps its settlement, but its amounts are
  held back from payout runs and withdrawals (``held_settled_by_party``) until it is released.

Who places and releases: ``handlers.refunds`` / ``accrual.order_refunded`` (``refund_open``),
``handlers.fraud`` (fraud rules, suspension, the admin's clear / forfeit). ``place`` and
``release`` lock the order's facts row first (``journal.facts``), so a hold and the events of
the same order are serialised. Functions never commit (the caller's unit of work does).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, exists, func, select, update
from sqlalchemy.orm import Session

from payouts import domain
from payouts.handlers.journal import F, facts, utc
from payouts.models import AccrualHold
from shared import clock
from shared.db import UnitOfWork

H: Table = AccrualHold.__table__  # type: ignore[assignment]


def place(
    uow: UnitOfWork,
    order_id: int,
    reason: str,
    at: datetime | str,
    *,
    ref: str = "",
    detail: dict[str, Any] | None = None,
    once: bool = False,
) -> int | None:
    """Hold the order's accrual for ``reason`` (``ref``). A hold already open for the same
    (reason, ref) is kept as it is. ``once``: a (reason, ref) that was ever recorded — also one
    already released, e.g. a refund decided before its request arrived — is not held again.
    Returns the new hold's id, or None when nothing was placed."""
    domain.check_hold_reason(reason)
    session = uow.session
    session.flush()  # the caller's changes to the facts row are kept when it is re-read
    row = facts(session, order_id)  # lock the order: holds and its events are serialised
    same = and_(H.c.order_id == order_id, H.c.reason == reason, H.c.ref == ref)
    if not once:
        same = and_(same, H.c.released_at.is_(None))
    if session.execute(select(H.c.id).where(same).limit(1)).first():
        return None
    hold = AccrualHold(
        order_id=order_id,
        shop_id=row.shop_id,
        reason=reason,
        ref=ref,
        detail=_dump(detail),
        created_at=utc(at),
    )
    session.add(hold)
    session.flush()
    return hold.id


def release(
    uow: UnitOfWork,
    order_id: int,
    reason: str,
    at: datetime | str,
    *,
    ref: str = "",
    decision: str,
    decided_by: str | None = None,
    why: str | None = None,
    remember: bool = False,
) -> int:
    """Release the open holds of the order for ``reason`` (``ref``) with ``decision``.
    ``remember``: when none is open and none was ever recorded, record one already released,
    so a request arriving after its decision (events reorder) is not held (``place(once=True)``).
    Returns how many holds were released."""
    domain.check_hold_reason(reason)
    session = uow.session
    session.flush()
    row = facts(session, order_id)
    when = utc(at)
    same = and_(H.c.order_id == order_id, H.c.reason == reason, H.c.ref == ref)
    released = len(
        session.execute(
            update(H)
            .where(same, H.c.released_at.is_(None))
            .values(released_at=when, decision=decision, decided_by=decided_by, decision_reason=why)
            .returning(H.c.id)
        ).all()
    )
    if not released and remember and not session.execute(select(H.c.id).where(same)).first():
        session.add(
            AccrualHold(
                order_id=order_id,
                shop_id=row.shop_id,
                reason=reason,
                ref=ref,
                created_at=when,
                released_at=when,
                decision=decision,
                decided_by=decided_by,
                decision_reason=why,
            )
        )
    session.flush()
    return released


def close(
    uow: UnitOfWork,
    rows: Iterable[AccrualHold],
    decision: str,
    by: str | None,
    why: str | None,
    at: datetime,
) -> list[int]:
    """Release these hold rows (already selected and locked by the caller: an admin's decision
    on one order's holds, a reinstatement on a shop's) with ``decision``; the ids closed now
    (a row already released is left as it was)."""
    closed = []
    for hold in rows:
        if hold.released_at is None:
            hold.released_at, hold.decision = at, decision
            hold.decided_by, hold.decision_reason = by, why
            closed.append(hold.id)
    uow.session.flush()
    return closed


def open_rows(session: Session, order_id: int) -> list[AccrualHold]:
    """The order's open holds, oldest first, locked for this transaction."""
    return list(
        session.scalars(
            select(AccrualHold)
            .where(AccrualHold.order_id == order_id, AccrualHold.released_at.is_(None))
            .order_by(AccrualHold.id)
            .with_for_update()
        )
    )


def open_rows_of_shop(session: Session, shop_id: int, reason: str) -> list[AccrualHold]:
    """The shop's open holds for ``reason`` (e.g. every ``suspended`` hold), locked."""
    return list(
        session.scalars(
            select(AccrualHold)
            .where(
                AccrualHold.shop_id == shop_id,
                AccrualHold.reason == reason,
                AccrualHold.released_at.is_(None),
            )
            .order_by(AccrualHold.id)
            .with_for_update()
        )
    )


# --- reads the settlement, payout runs, withdrawals and queries share ---------------------------
def not_held() -> Any:
    """SQL: the facts row's order has no open hold (the settlement UPDATE's condition)."""
    return ~is_held()


def is_held() -> Any:
    """SQL: the facts row's order has an open hold (any reason)."""
    return exists().where(H.c.order_id == F.c.order_id, H.c.released_at.is_(None))


def open_holds(session: Session, order_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """The open holds of these orders (every reason):
    ``{order_id: [{hold_id, reason, ref, since, detail}]}``."""
    ids = list(order_ids)
    out: dict[int, list[dict[str, Any]]] = {}
    if not ids:
        return out
    rows = session.execute(
        select(H.c.id, H.c.order_id, H.c.reason, H.c.ref, H.c.created_at, H.c.detail)
        .where(H.c.order_id.in_(ids), H.c.released_at.is_(None))
        .order_by(H.c.id)
    ).all()
    for r in rows:
        out.setdefault(int(r.order_id), []).append(
            {
                "hold_id": r.id,
                "reason": r.reason,
                "ref": r.ref or None,
                "since": clock.iso(utc(r.created_at)),
                "detail": _load(r.detail),
            }
        )
    return out


def history(session: Session, order_id: int) -> list[dict[str, Any]]:
    """Every hold the order ever had, open or released, oldest first."""
    rows = session.execute(select(H).where(H.c.order_id == order_id).order_by(H.c.id)).all()
    return [
        {
            "hold_id": r.id,
            "reason": r.reason,
            "ref": r.ref or None,
            "detail": _load(r.detail),
            "created_at": clock.iso(utc(r.created_at)),
            "released_at": clock.iso(r.released_at and utc(r.released_at)),
            "decision": r.decision,
            "decided_by": r.decided_by,
            "decision_reason": r.decision_reason,
        }
        for r in rows
    ]


def held_settled_by_party(
    session: Session, kind: str, party_id: int | None = None
) -> dict[int, int]:
    """Per keeper (shop) or supplier: what settled orders with an open hold still carry (their
    net commission, or net supplier payable). Payout runs and withdrawals hold it back."""
    if kind == domain.KEEPER:
        party, amount = F.c.shop_id, F.c.commission_fen - F.c.reversed_commission_fen
    else:
        party, amount = F.c.supplier_id, F.c.supplier_fen - F.c.reversed_supplier_fen
    stmt = (
        select(party, func.sum(amount))
        .where(F.c.settled_at.is_not(None), party.is_not(None), is_held())
        .group_by(party)
    )
    if party_id is not None:
        stmt = stmt.where(party == party_id)
    return {int(p): int(v or 0) for p, v in session.execute(stmt).tuples()}


def _dump(detail: dict[str, Any] | None) -> str | None:
    return json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else None


def _load(detail: str | None) -> Any:
    return json.loads(detail) if detail else None
