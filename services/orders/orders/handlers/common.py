"""What every orders handler shares: the unit of work it is given, the locked order, the
history row, and one state-machine step with its event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import update
from sqlalchemy.orm import Session

from orders import domain
from orders.models import Order, OrderHistory
from shared import clock
from shared.contracts.events import EventData, OrderStateChanged
from shared.contracts.orders import Viewer
from shared.errors import NotFound


class UnitOfWork(Protocol):
    """``shared.db.UnitOfWork`` in the service, ``shared.testing.FakeUnitOfWork`` in tests."""

    session: Session

    def emit(self, event_type: str, data: EventData, version: int = 1) -> dict: ...

    def event_row(
        self, event_type: str, data: EventData, version: int = 1
    ) -> tuple[Any, list[dict]]: ...

    def outcome_row(self, outcome: Any) -> tuple[Any, list[dict]] | None: ...

    def commit_with_next(self) -> None: ...


class Owed(NamedTuple):
    """A stock call still owed to the catalog for one order (``stock_state`` to_commit or
    to_release), made after the transaction that recorded it committed."""

    order_id: int
    stock_state: str
    reservation_id: str
    # a pool order's lines (product_id, quantity), sent with its paid release: the catalog
    # has no reservation for it until it consumed ``order_paid``
    items: tuple[tuple[int, int], ...] = ()


# to_commit: only orders paid before the catalog committed from order_paid; to_return: the
# stock of a PAID order goes back (the catalog may not have consumed order_paid yet)
STOCK_OWED = ("to_commit", "to_release", "to_return")


def owed_of(order: Order) -> list[Owed]:
    if order.stock_state not in STOCK_OWED:
        return []
    items: tuple[tuple[int, int], ...] = ()
    if order.stock_from == "pool":
        items = tuple((i.product_id, i.quantity) for i in order.items)
    return [Owed(order.id, order.stock_state, order.reservation_id, items)]


@dataclass
class Done:
    """A command's answer, plus the stock calls its transaction left owed to the catalog."""

    answer: dict
    owed: list[Owed] = field(default_factory=list)


def actor(viewer: Viewer | None) -> str:
    return "system" if viewer is None else f"{viewer.role}:{viewer.id}"


def lock_order(session: Session, order_id: int) -> Order:
    """The order row, locked for this transaction (FOR UPDATE on PostgreSQL; on SQLite a
    no-op write takes the database write lock before anything is read)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(Order).where(Order.id == order_id).values(status=Order.status))
        order = session.get(Order, order_id, populate_existing=True)
    else:
        order = session.get(Order, order_id, with_for_update=True, populate_existing=True)
    if order is None:
        raise NotFound(f"order {order_id} not found", code="order_not_found")
    return order


def record(
    session: Session,
    order: Order,
    from_status: str | None,
    to_status: str,
    by: str,
    now: datetime,
    note: str | None = None,
) -> None:
    """One line of the order's history (a transition, or a note at the same status)."""
    session.add(
        OrderHistory(
            order_id=order.id,
            from_status=from_status,
            to_status=to_status,
            actor=by,
            at=now,
            note=note,
        )
    )


STATE_EVENTS = (domain.SHIPPED, domain.RECEIVED, domain.COMPLETED, domain.CANCELLED, domain.EXPIRED)


def move(
    uow: UnitOfWork,
    order: Order,
    action: str,
    by: str,
    now: datetime,
    note: str | None = None,
    after_sales_until: datetime | None = None,
) -> str:
    """Apply one state-machine transition, record it, publish its event (``order_paid`` and
    ``order_refunded`` carry their own shape and are emitted by their handlers)."""
    before = order.status
    after = domain.transition(before, action)
    order.status = after
    record(uow.session, order, before, after, by, now, note)
    if after in STATE_EVENTS:
        uow.emit(
            domain.EVENT_OF[after],
            OrderStateChanged(
                order_id=order.id,
                supplier_id=order.supplier_id,
                shop_id=order.shop_id,
                status=after,
                at=clock.iso(now) or "",
                buyer_id=order.buyer_id,
                share_id=order.share_id,
                note=note,
                after_sales_until=clock.iso(after_sales_until),
            ),
        )
    return after


def receive(
    uow: UnitOfWork, rules: domain.OrderRules, order: Order, by: str, now: datetime, note: str
) -> None:
    """Shipped → received (by the buyer or automatically): the after-sales window opens and
    its closing instant travels in ``order_received`` (orders owns ``after_sales_days``)."""
    order.received_at = now
    move(uow, order, "receive", by, now, note, domain.after_sales_closes(now, rules))
