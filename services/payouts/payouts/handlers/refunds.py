"""Refund requests and decisions (orders' ``refund_requested`` / ``refund_decided``): the
``refund_open`` hold. Settlement never settles an order while a refund on it waits for the
supplier's decision (``domain.settleable_while_held``).

* ``refund_requested`` places a ``refund_open`` hold for that refund (``ref`` = its id), once:
  a request arriving after its decision (events reorder) finds the decision recorded and
  holds nothing.
* ``refund_decided`` with ``rejected`` releases it; with ``approved`` it does nothing here —
  the approval's ``order_refunded`` reverses the money and releases the hold in the same
  transaction (``accrual.order_refunded``), so no settlement can slip in between.
"""

from __future__ import annotations

from payouts import domain
from payouts.handlers import holds
from shared.contracts.events import RefundDecided, RefundRequested
from shared.db import UnitOfWork


def refund_requested(uow: UnitOfWork, event: RefundRequested) -> bool:
    """Hold the order's accrual while the refund waits for its decision. Whether a hold was
    placed."""
    hold_id = holds.place(
        uow,
        event.order_id,
        domain.REFUND_OPEN,
        event.at,
        ref=str(event.refund_id),
        detail={"refund_id": event.refund_id, "amount_fen": event.amount_fen},
        once=True,
    )
    return hold_id is not None


def refund_decided(uow: UnitOfWork, event: RefundDecided) -> int:
    """A rejected refund releases its hold (the order settles at the next run)."""
    if event.decision != "rejected":
        return 0  # approved: order_refunded releases it together with the reversal
    return holds.release(
        uow,
        event.order_id,
        domain.REFUND_OPEN,
        event.at,
        ref=str(event.refund_id),
        decision="rejected",
        decided_by=event.decided_by or f"supplier:{event.supplier_id}",
        remember=True,
    )
