"""The order's life after payment, and before it when it dies unpaid.

By people: the buyer cancels an unpaid order or confirms receipt, the supplier ships. By time
(``due`` then one transaction per order): unpaid orders expire after ``unpaid_expiry_minutes``,
shipped ones are received automatically ``auto_confirm_days`` after shipping, received ones
complete when the after-sales window (``after_sales_days``) closes — not while a refund waits.
Every cut-off instant comes from ``orders.domain``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from orders import domain
from orders.handlers import stock
from orders.handlers.common import (
    Done,
    UnitOfWork,
    actor,
    lock_order,
    move,
    owed_of,
    receive,
)
from orders.models import Order, Refund
from orders.queries import viewer_relation
from shared.contracts.orders import ShipIn, Viewer


# --- by people ------------------------------------------------------------------------------
def _mine(uow: UnitOfWork, order_id: int, viewer: Viewer, *allowed: str) -> Order:
    order = lock_order(uow.session, order_id)
    domain.require(viewer_relation(order, viewer), *allowed)
    return order


def _done(order: Order) -> Done:
    return Done({"id": order.id, "status": order.status}, owed_of(order))


def cancel(uow: UnitOfWork, order_id: int, viewer: Viewer, now: datetime) -> Done:
    """The buyer cancels an unpaid order; its stock goes back."""
    order = _mine(uow, order_id, viewer, domain.BUYER)
    move(uow, order, "cancel", actor(viewer), now, "cancelled by the buyer")
    stock.let_go(uow, order, now)
    return _done(order)


def ship(uow: UnitOfWork, order_id: int, viewer: Viewer, body: ShipIn, now: datetime) -> Done:
    """The supplier ships its own paid order."""
    order = _mine(uow, order_id, viewer, domain.SUPPLIER_VIEW)
    order.carrier, order.tracking_no, order.shipped_at = body.carrier, body.tracking_no, now
    move(uow, order, "ship", actor(viewer), now, f"{body.carrier} {body.tracking_no}")
    return _done(order)


def confirm(
    uow: UnitOfWork, rules: domain.OrderRules, order_id: int, viewer: Viewer, now: datetime
) -> Done:
    """The buyer confirms receipt: the after-sales window opens."""
    order = _mine(uow, order_id, viewer, domain.BUYER)
    receive(uow, rules, order, actor(viewer), now, "confirmed by the buyer")
    return _done(order)


# --- by time --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Due:
    expire: list[int]
    receive: list[int]
    complete: list[int]


def due(session: Session, rules: domain.OrderRules, now: datetime) -> Due:
    """The orders each time rule applies to now (each is re-checked under its lock)."""

    def ids(status: str, condition: ColumnElement[bool]) -> list[int]:
        return list(session.scalars(select(Order.id).where(Order.status == status, condition)))

    return Due(
        expire=ids(domain.CREATED, Order.expires_at <= now),
        receive=ids(
            domain.SHIPPED, Order.shipped_at <= domain.shipped_before_auto_receive(now, rules)
        ),
        complete=ids(
            domain.RECEIVED, Order.received_at <= domain.received_before_completion(now, rules)
        ),
    )


def expire_unpaid(uow: UnitOfWork, order_id: int, now: datetime) -> Done | None:
    """Unpaid in time: expired, its stock released. None when it was paid or cancelled first."""
    order = lock_order(uow.session, order_id)
    if order.status != domain.CREATED:
        return None
    move(uow, order, "expire", "system", now, "unpaid in time")
    stock.let_go(uow, order, now)
    return _done(order)


def receive_automatically(
    uow: UnitOfWork, rules: domain.OrderRules, order_id: int, now: datetime
) -> bool:
    """Shipped ``auto_confirm_days`` ago and not confirmed: received now."""
    order = lock_order(uow.session, order_id)
    if order.status != domain.SHIPPED:
        return False
    receive(uow, rules, order, "system", now, "auto-confirmed")
    return True


def complete(uow: UnitOfWork, order_id: int, now: datetime) -> bool:
    """The after-sales window closed: completed, unless a refund still waits for a decision."""
    order = lock_order(uow.session, order_id)
    if order.status != domain.RECEIVED:
        return False
    if not domain.may_complete(refund_sums(uow.session, order.id)[1]):
        return False  # a refund waits for the supplier: the window stays open
    order.completed_at = now
    move(uow, order, "complete", "system", now, "after-sales window closed")
    return True


def refund_sums(session: Session, order_id: int) -> tuple[int, int]:
    """(approved, pending) refund totals of an order, in fen."""
    rows = session.execute(
        select(Refund.status, func.coalesce(func.sum(Refund.amount_fen), 0))
        .where(Refund.order_id == order_id)
        .group_by(Refund.status)
    ).all()
    sums = {status: int(total) for status, total in rows}
    return sums.get("approved", 0), sums.get("requested", 0)
