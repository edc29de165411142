"""Payments: the provider's verified callback applied to the order (once per payment id), and
late payments (for an order no longer payable) refunded instead of applied.

The provider adapter itself (signature, sandbox, refunds) is ``orders.payments``.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Executable, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from orders import domain
from orders.handlers import stock
from orders.handlers.common import (
    Owed,
    UnitOfWork,
    lock_order,
    move,
    owed_of,
    record,
)
from orders.models import Order, OrderHistory, OrderItem, Payment, PaymentConflict
from shared import clock
from shared.contracts.events import OrderLine, OrderPaid
from shared.contracts.orders import PaymentCallback, Viewer
from shared.db import write_rows
from shared.errors import Conflict, NotFound
from shared.pg import PREPARED

log = logging.getLogger(__name__)

ORDERS = cast(Table, Order.__table__)
ITEMS = cast(Table, OrderItem.__table__)
HISTORY = cast(Table, OrderHistory.__table__)
PAYMENTS = cast(Table, Payment.__table__)


def amount_to_pay(session: Session, order_id: int, viewer: Viewer) -> int:
    """The sandbox ``/pay`` shortcut: only the buyer pays; the order's total."""
    row = session.execute(
        select(
            Order.id, Order.buyer_id, Order.supplier_id, Order.keeper_member_id, Order.total_fen
        ).where(Order.id == order_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"order {order_id} not found", code="order_not_found")
    domain.require(domain.viewer_relation(row._asdict(), viewer.role, viewer.id), domain.BUYER)
    return int(row.total_fen)


@dataclass
class Applied:
    """What a callback did: the answer, the stock calls owed, and — for a late payment — the
    409 to raise once the transaction that recorded the refund due has committed."""

    answer: dict
    owed: list[Owed] = field(default_factory=list)
    refused: Conflict | None = None


class NotFast(Exception):
    """Not the common case (an unpaid, unexpired order paid in full by its buyer or by a
    succeeded callback): roll back and take the full path."""


def outcome_of(answer: dict, refused: Conflict | None = None) -> dict:
    """What a payment request answers, as recorded under its idempotency key and replayed."""
    return {"answer": answer, "refused": list(refused.args) if refused is not None else None}


LINE_COLUMNS = (
    "product_id",
    "title",
    "quantity",
    "unit_price_fen",
    "amount_fen",
    "commission_bps",
    "carried",
)


def _mark_paid(
    session: Session,
    order_id: int,
    payment_id: str,
    now: datetime,
    amount_fen: int | None = None,
    buyer_id: int | None = None,
) -> tuple[Any, list[Any]] | None:
    """The common case: an unpaid, unexpired order (of ``buyer_id``, for ``amount_fen`` when
    given) becomes paid; (the row as it is now, its items), or None (anything else: the full
    path decides). The stock is the catalog's to commit from ``order_paid``. On PostgreSQL one
    statement: ``WITH paid AS (UPDATE … RETURNING …) SELECT … JOIN order_items``, built once
    per shape (``_paying``) with its values as bind parameters."""
    # parameter names no column has: an UPDATE reads a column's name as a value for its SET
    params = dict(p_order=order_id, p_now=now, p_payment=payment_id)
    if amount_fen is not None:
        params["p_amount"] = amount_fen
    if buyer_id is not None:
        params["p_buyer"] = buyer_id
    postgres = session.get_bind().dialect.name == "postgresql"
    stmt = _paying(postgres, amount_fen is not None, buyer_id is not None)
    if not postgres:
        row = session.execute(stmt, params).first()
        if row is None:
            return None
        items = [ITEMS.c[c] for c in LINE_COLUMNS]
        where = ITEMS.c.order_id == order_id
        return row, list(session.execute(select(*items).where(where).order_by(ITEMS.c.id)))
    rows = session.execute(stmt, params).all()
    if not rows:
        return None
    return rows[0], [r for r in rows if r.product_id is not None]


@functools.cache
def _paying(postgres: bool, by_amount: bool, by_buyer: bool) -> Executable:
    """``_mark_paid``'s statement for one shape (built once: constructing it costs more CPU
    than PostgreSQL spends running it)."""
    now = bindparam("p_now", type_=ORDERS.c.paid_at.type)
    conditions = [
        ORDERS.c.id == bindparam("p_order", type_=ORDERS.c.id.type),
        ORDERS.c.status == domain.CREATED,
        ORDERS.c.expires_at > now,
    ]
    if by_amount:
        conditions.append(
            ORDERS.c.total_fen == bindparam("p_amount", type_=ORDERS.c.total_fen.type)
        )
    if by_buyer:
        conditions.append(ORDERS.c.buyer_id == bindparam("p_buyer", type_=ORDERS.c.buyer_id.type))
    paying = (
        update(ORDERS)
        .where(*conditions)
        .values(
            status=domain.transition(domain.CREATED, "pay"),
            paid_fen=ORDERS.c.total_fen,
            paid_at=now,
            payment_id=bindparam("p_payment", type_=ORDERS.c.payment_id.type),
            stock_state="committed",
        )
        .returning(*ORDERS.c)
    )
    if not postgres:
        return paying
    paid = paying.cte("paid")
    items = [ITEMS.c[c] for c in LINE_COLUMNS]
    return (
        select(paid, *items)
        .select_from(paid.outerjoin(ITEMS, ITEMS.c.order_id == paid.c.id))
        .order_by(ITEMS.c.id)
        .execution_options(**PREPARED)  # hot: parsed once per connection (shared.pg)
    )


def _paid(
    uow: UnitOfWork,
    paid: tuple[Any, list[Any]],
    provider: str,
    payment_id: str,
    payload: dict,
    now: datetime,
) -> Applied:
    """The rest of a fast payment in ONE statement (``write_rows``), which carries the
    transaction's COMMIT (``UnitOfWork.commit_with_next``): the history line, the
    ``order_paid`` outbox row, the request's idempotency key with its answer (a fast payment
    claims no key first: a key already recorded fails the statement, and the caller takes the
    full path, which answers the recorded outcome) and the payment row — a payment id seen
    before fails it the same way (a unique violation: nothing is committed, the caller takes
    the full path, which records the duplicate). No pre-read."""
    s = uow.session
    row, lines = paid
    history = dict(
        order_id=row.id,
        from_status=domain.CREATED,
        to_status=row.status,
        actor="provider",
        at=now,
        note=f"payment {payment_id}",
    )
    the_payment = dict(
        payment_id=payment_id,
        order_id=row.id,
        amount_fen=row.paid_fen,
        provider=provider,
        received_at=now,
        payload=payload,
        outcome="applied",
    )
    applied = Applied({"order_id": row.id, "status": row.status})
    key = uow.outcome_row(outcome_of(applied.answer))
    uow.commit_with_next()
    write_rows(
        s,
        (insert(HISTORY), [history]),
        uow.event_row("order_paid", order_paid(row, now, lines)),
        *([key] if key is not None else []),
        (insert(PAYMENTS), [the_payment]),
    )
    return applied


def pay_sandbox(
    uow: UnitOfWork, provider: Any, order_id: int, viewer: Viewer, now: datetime
) -> Applied:
    """The sandbox ``/pay`` shortcut's common case: the buyer pays an unpaid order's total in
    two statements (``_mark_paid``, ``_paid``). Anything else (another viewer, an order not
    awaiting payment): NotFast — the caller applies the signed callback the provider would
    send (``apply_callback`` with ``fast=False``)."""
    payment_id = f"sbx-pay-{order_id}"
    if viewer.role == "member" and str(viewer.id).isdigit():
        paid = _mark_paid(uow.session, order_id, payment_id, now, buyer_id=int(viewer.id))
        if paid is not None:
            raw, _signature = provider.build_callback(order_id, int(paid[0].total_fen), payment_id)
            return _paid(uow, paid, provider.name, payment_id, json.loads(raw), now)
    raise NotFast(order_id)


def apply_callback(
    uow: UnitOfWork,
    cb: PaymentCallback,
    payload: dict,
    now: datetime,
    provider: str | None = None,
    raw: str | None = None,
    fast: bool = False,
) -> Applied:
    """A verified callback: the order becomes paid, or the payment is recorded as refund due
    (late: expired, cancelled, already paid by another payment), or nothing (duplicate, failed
    payment notice). An amount mismatch is a 422 and changes nothing. A payment id that
    belongs to another order is refused (409) and recorded in ``payment_conflicts``.
    ``provider``: the adapter that verified the signature (default: what the body says).
    ``fast``: only the common case, in one UPDATE (``_mark_paid``) and one INSERT (``_paid``);
    anything else raises NotFast (the caller rolls back and calls again with ``fast=False``)."""
    s = uow.session
    provider = provider or cb.provider
    if fast:
        if cb.status == "succeeded":
            paid = _mark_paid(s, cb.order_id, cb.payment_id, now, amount_fen=cb.amount_fen)
            if paid is not None:
                return _paid(uow, paid, provider, cb.payment_id, payload, now)
        raise NotFast(cb.order_id)
    order = lock_order(s, cb.order_id)
    if cb.status != "succeeded":
        return Applied({"order_id": order.id, "status": order.status, "ignored": True})
    owner = s.execute(
        select(Payment.order_id).where(
            Payment.provider == provider, Payment.payment_id == cb.payment_id
        )
    ).scalar_one_or_none()
    if domain.payment_id_taken(owner, order.id):
        assert owner is not None
        return conflict(uow, provider, cb, owner, raw or json.dumps(payload), now)
    seen = owner is not None
    expires = clock.as_utc(order.expires_at)
    if not seen and order.status == domain.CREATED and expires and domain.is_expired(expires, now):
        move(uow, order, "expire", "system", now, "unpaid in time")
        stock.let_go(uow, order, now)
    decision = domain.payment_decision(order.status, cb.amount_fen, order.total_fen, seen)
    if decision == domain.DUPLICATE:
        return Applied({"order_id": order.id, "status": order.status, "duplicate": True})
    payment = Payment(
        payment_id=cb.payment_id,
        order_id=order.id,
        amount_fen=cb.amount_fen,
        provider=provider,
        received_at=now,
        payload=payload,
        outcome="applied",
    )
    s.add(payment)
    refused = None
    if decision == domain.LATE:
        payment.outcome = "refund_due"
        note = f"late payment {cb.payment_id} not applied; refund due"
        record(s, order, order.status, order.status, "provider", now, note)
        refused = Conflict(
            f"order {order.id} is {order.status}: the payment was not applied and will be refunded",
            details={"status": order.status, "payment": "refund_due", "payment_id": cb.payment_id},
            code="payment_not_applicable",
        )
    else:
        before = order.status
        order.status = domain.transition(before, "pay")
        order.paid_fen = cb.amount_fen
        order.paid_at = now
        order.payment_id = cb.payment_id
        order.stock_state = "committed"  # by the catalog, from order_paid
        record(s, order, before, order.status, "provider", now, f"payment {cb.payment_id}")
        uow.emit("order_paid", order_paid(order, now, order.items))
    return Applied({"order_id": order.id, "status": order.status}, owed_of(order), refused)


def conflict(
    uow: UnitOfWork, provider: str, cb: PaymentCallback, owner: int, raw: str, now: datetime
) -> Applied:
    """Record a payment id presented for an order it does not belong to; the 409 to raise."""
    uow.session.add(
        PaymentConflict(
            provider=provider,
            payment_id=cb.payment_id,
            order_id_claimed=cb.order_id,
            order_id_owning=owner,
            amount_fen=cb.amount_fen,
            at=now,
            raw_callback=raw,
        )
    )
    log.error(
        "payment %s/%s presented for order %s belongs to order %s: refused",
        provider,
        cb.payment_id,
        cb.order_id,
        owner,
    )
    refused = Conflict(
        f"payment {cb.payment_id} belongs to another order",
        details={"payment_id": cb.payment_id, "order_id": cb.order_id},
        code="payment_id_conflict",
    )
    return Applied({"order_id": cb.order_id, "conflict": True}, [], refused)


def order_paid(order: Any, now: datetime, items: Any) -> OrderPaid:
    """``order_paid`` from the order (a model or a row) and its items; the catalog commits
    the reservation named in it."""
    return OrderPaid(
        order_id=order.id,
        buyer_id=order.buyer_id,
        supplier_id=order.supplier_id,
        shop_id=order.shop_id,
        share_id=order.share_id,
        self_referral=order.self_referral,
        paid_fen=order.paid_fen,
        paid_at=clock.iso(now) or "",
        keeper_member_id=order.keeper_member_id,
        shop_number=order.shop_number,
        payment_id=order.payment_id,
        total_fen=order.total_fen,
        buyer_phone_fp=order.buyer_phone_fp,
        buyer_address_fp=order.buyer_address_fp,
        buyer_visitor_fp=order.buyer_visitor_fp,
        reservation_id=order.reservation_id,
        allotted=order.stock_from == "pool",
        lines=[
            OrderLine(
                product_id=i.product_id,
                title=i.title,
                quantity=i.quantity,
                unit_price_fen=i.unit_price_fen,
                amount_fen=i.amount_fen,
                commission_bps=i.commission_bps,
                carried=i.carried,
            )
            for i in items
        ],
    )


# --- late payments: money back --------------------------------------------------------------
def late_payments(session: Session) -> list[tuple[str, int]]:
    """(payment id, amount) of every payment recorded as refund due."""
    rows = session.execute(
        select(Payment.payment_id, Payment.amount_fen).where(Payment.outcome == "refund_due")
    ).all()
    return [(row.payment_id, int(row.amount_fen)) for row in rows]


def refund_late(provider: Any, payment_id: str, amount_fen: int) -> bool:
    """Give a late payment back (idempotent per payment at the provider); False to retry."""
    try:
        provider.refund(payment_id, amount_fen, f"late-{payment_id}")
    except Exception as exc:
        log.warning("refunding late payment %s failed: %s", payment_id, exc)
        return False
    return True


def mark_refunded(uow: UnitOfWork, payment_id: str) -> None:
    uow.session.execute(
        update(Payment)
        .where(Payment.payment_id == payment_id, Payment.outcome == "refund_due")
        .values(outcome="refunded")
    )
