"""Holds on accruals (issues 13, 16): the queue operators work and an order's holds."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from payouts.handlers.journal import F
from payouts.models import AccrualHold
from shared import clock

# --- holds (issues 13, 16) -------------------------------------------------------------------
H = AccrualHold.__table__


def _hold_select() -> Any:
    return select(
        H,
        F.c.paid_fen,
        F.c.supplier_id,
        (F.c.commission_fen - F.c.reversed_commission_fen).label("net_commission_fen"),
        F.c.after_sales_until,
        F.c.settled_at,
        F.c.commission_forfeited,
    ).select_from(H.outerjoin(F, F.c.order_id == H.c.order_id))


def hold_dict(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "order_id": r.order_id,
        "shop_id": r.shop_id,
        "supplier_id": r.supplier_id,
        "reason": r.reason,
        "ref": r.ref or None,
        "detail": json.loads(r.detail) if r.detail else None,
        "status": "open" if r.released_at is None else "closed",
        "created_at": clock.iso(r.created_at),
        "released_at": clock.iso(r.released_at),
        "decision": r.decision,
        "decided_by": r.decided_by,
        "decision_reason": r.decision_reason,
        "paid_fen": int(r.paid_fen or 0),
        "net_commission_fen": int(r.net_commission_fen or 0),
        "commission_forfeited": bool(r.commission_forfeited),
        "after_sales_until": clock.iso(r.after_sales_until),  # when it would settle unheld
        "settled_at": clock.iso(r.settled_at),
    }


def holds(session: Session, status: str, shop_id: int | None, limit: int) -> dict[str, Any]:
    """``GET /api/v1/admin/holds``: holds by status (open, closed, all), newest first."""
    stmt = _hold_select().order_by(H.c.id.desc()).limit(limit)
    if status == "open":
        stmt = stmt.where(H.c.released_at.is_(None))
    elif status == "closed":
        stmt = stmt.where(H.c.released_at.is_not(None))
    if shop_id is not None:
        stmt = stmt.where(H.c.shop_id == shop_id)
    rows = [hold_dict(r) for r in session.execute(stmt).all()]
    return {"status": status, "count": len(rows), "holds": rows}


def order_holds(session: Session, order_id: int) -> list[dict[str, Any]]:
    """Every hold of one order, oldest first (its history)."""
    stmt = _hold_select().where(H.c.order_id == order_id).order_by(H.c.id)
    return [hold_dict(r) for r in session.execute(stmt).all()]
