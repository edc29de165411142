"""Holds: why an order's accrual may not settle, or be paid, yet (decisions.md "Money holds").

A hold is a row (``holds``): the order, a reason (``domain.REFUND_OPEN``, ``fraud:<rule>``,
``suspended``, ...), a ``ref`` telling holds of one reason apart (a refund's id), when it was
placed, and — once released — when, with which decision and by whom. Rows are never deleted,
so every decision stays in the ledger's history.

* An order with an open hold does not settle (``not_held`` in the settlement UPDATE).
* An order that settled before a hold was placed keeps its settlement, but its amounts are
  held back from payout runs (``held_settled_by_party``) until the hold is released.

Every function locks the order's facts row first (``journal.facts``), so a hold and the
events of the same order are serialised. Functions never commit (the caller's unit of work
does). Issue 16 uses ``refund_open``; fraud rules and suspension use the same functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, exists, func, select, update
from sqlalchemy.orm import Session

from payouts import domain
from payouts.handlers.journal import F, facts, utc
from payouts.models import Hold
from shared import clock
from shared.db import UnitOfWork

H: Table = Hold.__table__  # type: ignore[assignment]


def place(
    uow: UnitOfWork,
    order_id: int,
    reason: str,
    at: datetime | str,
    *,
    ref: str = "",
    note: str | None = None,
    once: bool = False,
) -> bool:
    """Hold the order's accrual for ``reason`` (``ref``). A hold already open for the same
    (reason, ref) is kept as it is. ``once``: a (reason, ref) that was ever recorded — also one
    already released, e.g. a refund decided before its request arrived — is not held again.
    Returns whether a hold was placed."""
    domain.check_hold_reason(reason)
    session = uow.session
    session.flush()  # the caller's changes to the facts row are kept when it is re-read
    facts(session, order_id)  # lock the order: holds and its events are serialised
    same = and_(H.c.order_id == order_id, H.c.reason == reason, H.c.ref == ref)
    if not once:
        same = and_(same, H.c.released_at.is_(None))
    if session.execute(select(H.c.id).where(same).limit(1)).first():
        return False
    session.add(Hold(order_id=order_id, reason=reason, ref=ref, note=note, created_at=utc(at)))
    session.flush()
    return True


def release(
    uow: UnitOfWork,
    order_id: int,
    reason: str,
    at: datetime | str,
    *,
    ref: str = "",
    decision: str,
    decided_by: str | None = None,
    remember: bool = False,
) -> int:
    """Release the open holds of the order for ``reason`` (``ref``) with ``decision``.
    ``remember``: when none is open and none was ever recorded, record one already released,
    so a request arriving after its decision (events reorder) is not held (``place(once=True)``).
    Returns how many holds were released."""
    domain.check_hold_reason(reason)
    session = uow.session
    session.flush()
    facts(session, order_id)
    when = utc(at)
    same = and_(H.c.order_id == order_id, H.c.reason == reason, H.c.ref == ref)
    released = len(
        session.execute(
            update(H)
            .where(same, H.c.released_at.is_(None))
            .values(released_at=when, decision=decision, decided_by=decided_by)
            .returning(H.c.id)
        ).all()
    )
    if not released and remember and not session.execute(select(H.c.id).where(same)).first():
        session.add(
            Hold(
                order_id=order_id,
                reason=reason,
                ref=ref,
                created_at=when,
                released_at=when,
                decision=decision,
                decided_by=decided_by,
            )
        )
    session.flush()
    return released


# --- reads the settlement, payout runs and queries share --------------------------------------
def not_held() -> Any:
    """SQL: the facts row's order has no open hold (the settlement UPDATE's condition)."""
    return ~exists().where(H.c.order_id == F.c.order_id, H.c.released_at.is_(None))


def is_held() -> Any:
    return exists().where(H.c.order_id == F.c.order_id, H.c.released_at.is_(None))


def open_holds(session: Session, order_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """The open holds of these orders: ``{order_id: [{hold_id, reason, ref, since, note}]}``."""
    ids = list(order_ids)
    out: dict[int, list[dict[str, Any]]] = {}
    if not ids:
        return out
    rows = session.execute(
        select(H.c.id, H.c.order_id, H.c.reason, H.c.ref, H.c.created_at, H.c.note)
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
                "note": r.note,
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
            "note": r.note,
            "created_at": clock.iso(utc(r.created_at)),
            "released_at": clock.iso(r.released_at and utc(r.released_at)),
            "decision": r.decision,
            "decided_by": r.decided_by,
        }
        for r in rows
    ]


def held_settled_by_party(session: Session, kind: str) -> dict[int, int]:
    """Per keeper (shop) or supplier: what settled orders with an open hold still carry (their
    net commission, or net supplier payable). A payout run holds it back."""
    if kind == domain.KEEPER:
        party, amount = F.c.shop_id, F.c.commission_fen - F.c.reversed_commission_fen
    else:
        party, amount = F.c.supplier_id, F.c.supplier_fen - F.c.reversed_supplier_fen
    rows = session.execute(
        select(party, func.sum(amount))
        .where(F.c.settled_at.is_not(None), party.is_not(None), is_held())
        .group_by(party)
    ).tuples()
    return {int(p): int(v or 0) for p, v in rows}
