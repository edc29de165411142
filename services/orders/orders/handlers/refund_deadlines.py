"""Refund deadlines: a refund the supplier has not decided by its ``decide_by`` is approved by
the timer or escalated to the platform's queue (``refund_timeout_action``; PRODUCT.md: refunds
are decided by the supplier — with a timeout)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orders import domain
from orders.handlers.common import Done, UnitOfWork, lock_order, record
from orders.handlers.refunds import apply_decision
from orders.models import Refund
from orders.queries import refund_dict
from shared import clock
from shared.contracts.events import RefundEscalated

TIMER = "system:refund_timeout"


def overdue(session: Session, now: datetime, limit: int = 200) -> list[int]:
    """Undecided, not yet escalated refunds whose deadline has come (``domain.refund_overdue``
    is this comparison), oldest deadline first."""
    return list(
        session.scalars(
            select(Refund.id)
            .where(
                Refund.status == "requested",
                Refund.escalated_at.is_(None),
                Refund.decide_by <= now,
            )
            .order_by(Refund.decide_by, Refund.id)
            .limit(limit)
        )
    )


def on_deadline(
    uow: UnitOfWork, provider: Any, rules: domain.OrderRules, refund_id: int, now: datetime
) -> Done | None:
    """Apply the configured action to one overdue refund, re-checked under its order's lock
    (None: the supplier decided first, or it is no longer due)."""
    s = uow.session
    found = s.get(Refund, refund_id)
    if found is None:
        return None
    order = lock_order(s, found.order_id)
    refund = s.get(Refund, refund_id, populate_existing=True)
    assert refund is not None  # the order is locked: its refunds cannot go away
    if refund.status != "requested" or refund.escalated_at is not None:
        return None
    if not domain.refund_overdue(clock.as_utc(refund.decide_by), now):
        return None
    if domain.refund_timeout_action(rules) == "approve":
        return apply_decision(uow, provider, order, refund, True, TIMER, now)
    refund.escalated_at = now
    note = f"refund {refund.id} escalated to the platform: no decision by its deadline"
    record(s, order, order.status, order.status, TIMER, now, note)
    uow.emit(
        "refund_escalated",
        RefundEscalated(
            order_id=order.id,
            refund_id=refund.id,
            supplier_id=order.supplier_id,
            amount_fen=refund.amount_fen,
            at=clock.iso(now) or "",
            buyer_id=order.buyer_id,
        ),
    )
    return Done(refund_dict(refund))
