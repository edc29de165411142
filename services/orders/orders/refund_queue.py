"""The refund queue: a supplier's refunds to decide, each with its deadline (``decide_by``),
most urgent first; the platform sees every supplier's, and ``escalated=true`` narrows it to the
refunds that passed their deadline into the platform's queue (``refund_timeout_action``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from orders.models import Order, Refund
from orders.queries import Cursor, _newest_first, decode_cursor, encode_cursor, refund_dict
from shared.contracts.orders import RefundQuery, Viewer
from shared.errors import ValidationFailed


def list_refunds(session: Session, viewer: Viewer, q: RefundQuery) -> dict:
    try:
        cursor = decode_cursor(q.cursor) if q.cursor else None
    except ValueError as exc:
        raise ValidationFailed(
            "the cursor is invalid", details=[{"field": "cursor", "message": "bad cursor"}]
        ) from exc
    stmt = select(Refund, Order.status).join(Order, Order.id == Refund.order_id)
    stmt = stmt.where(Refund.status == q.status)
    if viewer.role == "supplier":
        stmt = stmt.where(Refund.supplier_id == int(viewer.id))
    if q.escalated is not None:
        stmt = stmt.where(
            Refund.escalated_at.is_not(None) if q.escalated else Refund.escalated_at.is_(None)
        )
    if q.status == "requested":
        rows = session.execute(_most_urgent_first(stmt, cursor, q.limit)).all()
        key = "decide_by"
    else:
        rows = session.execute(_newest_first(stmt, Refund, cursor, q.limit)).all()
        key = "created_at"
    items = [refund_dict(r) | {"order_status": status} for r, status in rows[: q.limit]]
    last = rows[q.limit - 1][0] if len(rows) > q.limit else None
    return {
        "items": items,
        "next_cursor": encode_cursor(getattr(last, key), last.id) if last is not None else None,
    }


def _most_urgent_first(stmt: Any, cursor: Cursor | None, limit: int) -> Any:
    if cursor is not None:
        at, row_id = cursor
        stmt = stmt.where(
            or_(Refund.decide_by > at, and_(Refund.decide_by == at, Refund.id > row_id))
        )
    return stmt.order_by(Refund.decide_by, Refund.id).limit(limit + 1)
