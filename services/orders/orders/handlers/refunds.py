"""Refunds: the buyer asks for an amount, named by item or spread over the items
(``domain.refund_items``), the supplier approves (the money goes back through the payment
provider) or rejects. A full refund makes the order ``refunded``; a full refund before
shipping also gives the stock back to the catalog (``domain.refund_returns_stock``).
The request emits ``refund_requested``, the decision ``refund_decided`` (payouts holds the
order's commission in between, messages tells the supplier and the buyer); an approval also
emits ``order_refunded`` with the items."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orders import domain
from orders.handlers.common import Done, UnitOfWork, actor, lock_order, owed_of, record
from orders.handlers.lifecycle import refund_sums
from orders.models import Order, Refund, RefundItem
from orders.queries import refund_dict, viewer_relation
from shared import clock
from shared.contracts.events import OrderRefunded, RefundDecided, RefundRequested
from shared.contracts.events import RefundItem as RefundItem_
from shared.contracts.orders import RefundIn, Viewer
from shared.ids import unused_int_id
from shared.validation import not_found

TAKEN = ("approved", "requested")  # refunds that take their amount from the order


def request_refund(
    uow: UnitOfWork,
    order_id: int,
    viewer: Viewer,
    body: RefundIn,
    now: datetime,
    rules: domain.OrderRules | None = None,
) -> dict:
    """Any amount up to paid − approved − pending, while the after-sales window is open; the
    supplier decides by ``domain.refund_decide_by`` (then the timer acts)."""
    s = uow.session
    order = lock_order(s, order_id)
    domain.require(viewer_relation(order, viewer), domain.BUYER)
    approved, pending = refund_sums(s, order.id)
    domain.check_refund_request(order.status, body.amount_fen, order.paid_fen, approved, pending)
    named = [i.model_dump() for i in body.items] if body.items else None
    items = domain.refund_items(body.amount_fen, named, left_by_item(s, order))
    refund = Refund(
        id=unused_int_id(s, Refund),
        order_id=order.id,
        supplier_id=order.supplier_id,
        buyer_id=order.buyer_id,
        amount_fen=body.amount_fen,
        reason=body.reason,
        status="requested",
        order_status_at_request=order.status,
        created_at=now,
        items=[RefundItem(product_id=pid, amount_fen=fen) for pid, fen in items.items()],
        decide_by=domain.refund_decide_by(now, rules or domain.OrderRules()),
    )
    s.add(refund)
    s.flush()
    note = f"refund {refund.id} requested: {body.amount_fen} fen"
    record(s, order, order.status, order.status, actor(viewer), now, note)
    uow.emit(
        "refund_requested",
        RefundRequested(
            order_id=order.id,
            refund_id=refund.id,
            supplier_id=order.supplier_id,
            shop_id=order.shop_id,
            amount_fen=refund.amount_fen,
            at=clock.iso(now) or "",
            items=event_items(refund),
            buyer_id=order.buyer_id,
        ),
    )
    return refund_dict(refund)


def left_by_item(s: Session, order: Order) -> dict[int, int]:
    """What is left to refund of each item: its amount minus what approved and pending
    refunds took of it (a refund recorded before refunds named items counts as spread)."""
    left = {int(i.product_id): int(i.amount_fen) for i in order.items}
    amounts = dict(left)
    taken = s.execute(
        select(Refund).where(Refund.order_id == order.id, Refund.status.in_(TAKEN))
    ).scalars()
    for r in taken:
        parts = {i.product_id: i.amount_fen for i in r.items} or domain.spread_refund(
            r.amount_fen, amounts
        )
        for pid, fen in parts.items():
            if pid in left:
                left[pid] = max(0, left[pid] - int(fen))
    return left


def event_items(refund: Refund) -> list[RefundItem_] | None:
    return [
        RefundItem_(product_id=i.product_id, amount_fen=i.amount_fen) for i in refund.items
    ] or None


def _decided(order: Order, refund: Refund, by: str, now: datetime) -> RefundDecided:
    return RefundDecided(
        order_id=order.id,
        refund_id=refund.id,
        supplier_id=order.supplier_id,
        shop_id=order.shop_id,
        decision="approved" if refund.status == "approved" else "rejected",
        amount_fen=refund.amount_fen,
        at=clock.iso(now) or "",
        decided_by=by,
    )


def decide_refund(
    uow: UnitOfWork,
    provider: Any,
    refund_id: int,
    viewer: Viewer,
    approve: bool,
    now: datetime,
) -> Done:
    """The order's supplier decides once; an approval pays the money back and emits
    ``order_refunded``."""
    s = uow.session
    found = s.get(Refund, refund_id)
    if found is None:
        raise not_found("refund", refund_id)
    order = lock_order(s, found.order_id)
    domain.require(viewer_relation(order, viewer, ("refund", refund_id)), domain.SUPPLIER_VIEW)
    refund = s.get(Refund, refund_id, populate_existing=True)  # as of the lock
    assert refund is not None  # the order is locked: its refunds cannot go away
    domain.check_refund_decision(refund.status)
    return apply_decision(uow, provider, order, refund, approve, actor(viewer), now)


def apply_decision(
    uow: UnitOfWork,
    provider: Any,
    order: Order,
    refund: Refund,
    approve: bool,
    by: str,
    now: datetime,
) -> Done:
    """The decision on an undecided refund of the locked ``order``, by the supplier, the
    platform, or the deadline timer (``by``)."""
    s = uow.session
    refund.decided_at = now
    if not approve:
        refund.status = "rejected"
        record(s, order, order.status, order.status, by, now, f"refund {refund.id} rejected")
        uow.emit("refund_decided", _decided(order, refund, by, now))
        return Done(refund_dict(refund))
    answer = provider.refund(order.payment_id, refund.amount_fen, f"refund-{refund.id}")
    refund.provider_refund_id = answer["refund_id"]
    refund.status = "approved"
    before = order.status
    order.refunded_fen = (order.refunded_fen or 0) + refund.amount_fen
    after = domain.status_after_refund(before, order.paid_fen, order.refunded_fen)
    order.status = after
    note = f"refund {refund.id} approved: {refund.amount_fen} fen"
    record(s, order, before, after, by, now, note)
    if domain.refund_returns_stock(before, after == domain.REFUNDED):
        order.stock_state = "to_return"  # paid stock: the catalog returns it whatever it holds
    uow.emit(
        "order_refunded",
        OrderRefunded(
            order_id=order.id,
            refund_id=refund.id,
            supplier_id=order.supplier_id,
            shop_id=order.shop_id,
            amount_fen=refund.amount_fen,
            paid_fen=order.paid_fen,
            refunded_total_fen=order.refunded_fen,
            at=clock.iso(now) or "",
            status=after,
            shipped=before != domain.PAID,
            buyer_id=order.buyer_id,
            items=event_items(refund),
        ),
    )
    uow.emit("refund_decided", _decided(order, refund, by, now))
    return Done(refund_dict(refund), owed_of(order))
