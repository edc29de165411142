"""Reads of the orders service and their serialisers (dict builders), apart from commands.

Who sees what: the buyer, the keeper of the shop that brought the order (address masked, no
buyer id), the supplier of the order, and the platform (``domain.viewer_relation``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from orders import domain
from orders.models import CartItem, Checkout, Order, OrderHistory, PaymentConflict, Refund
from shared import clock
from shared.contracts.orders import ListQuery, Viewer
from shared.validation import not_found


# --- who sees what --------------------------------------------------------------------------
def access(order: Order) -> dict:
    return {
        "id": order.id,
        "buyer_id": order.buyer_id,
        "supplier_id": order.supplier_id,
        "keeper_member_id": order.keeper_member_id,
    }


def viewer_relation(order: Order, viewer: Viewer, asked: tuple[str, Any] | None = None) -> str:
    """buyer / keeper / supplier / admin; 404 as if missing when the order is not theirs."""
    return domain.viewer_relation(access(order), viewer.role, viewer.id, asked)


def load_order(session: Session, order_id: int) -> Order:
    order = session.get(Order, order_id)
    if order is None:
        raise not_found("order", order_id)
    return order


# --- serialisers ----------------------------------------------------------------------------
def items(order: Order) -> list[dict]:
    return [
        {
            "product_id": i.product_id,
            "title": i.title,
            "quantity": i.quantity,
            "unit_price_fen": i.unit_price_fen,
            "amount_fen": i.amount_fen,
            "commission_bps": i.commission_bps,
            "carried": i.carried,
        }
        for i in order.items
    ]


def order_summary(o: Order) -> dict:
    return {
        "id": o.id,
        "status": o.status,
        "supplier_id": o.supplier_id,
        "total_fen": o.total_fen,
        "shop_id": o.shop_id,
        "share_id": o.share_id,
        "self_referral": o.self_referral,
        "items": items(o),
        "expires_at": clock.iso(o.expires_at),
    }


def order_dict(o: Order, relation: str, history: Sequence[OrderHistory] | None = None) -> dict:
    address: dict = {"name": o.address_name, "phone": o.address_phone, "line": o.address_line}
    if relation == domain.KEEPER_VIEW:
        address = domain.masked_address(address)
    out = {
        **order_summary(o),
        "buyer_id": o.buyer_id if relation != domain.KEEPER_VIEW else None,
        "paid_fen": o.paid_fen,
        "refunded_fen": o.refunded_fen,
        "shop_number": o.shop_number,
        "attribution_source": o.attribution_source,
        "address": address,
        "carrier": o.carrier,
        "tracking_no": o.tracking_no,
        "created_at": clock.iso(o.created_at),
        "paid_at": clock.iso(o.paid_at),
        "shipped_at": clock.iso(o.shipped_at),
        "received_at": clock.iso(o.received_at),
        "completed_at": clock.iso(o.completed_at),
        "viewer": relation,
    }
    if relation in (domain.ADMIN, domain.SUPPLIER_VIEW):
        out["stock_state"] = o.stock_state
        out["payment_id"] = o.payment_id
    if history is not None:
        out["history"] = [
            {
                "from": h.from_status,
                "to": h.to_status,
                "by": h.actor,
                "at": clock.iso(h.at),
                "note": h.note,
            }
            for h in history
        ]
    return out


def refund_dict(r: Refund) -> dict:
    return {
        "id": r.id,
        "order_id": r.order_id,
        "amount_fen": r.amount_fen,
        "reason": r.reason,
        "status": r.status,
        "supplier_id": r.supplier_id,
        "provider_refund_id": r.provider_refund_id,
        "created_at": clock.iso(r.created_at),
        "decided_at": clock.iso(r.decided_at),
        "items": [{"product_id": i.product_id, "amount_fen": i.amount_fen} for i in r.items],
        "decide_by": clock.iso(r.decide_by),
        "escalated": r.escalated_at is not None,
        "escalated_at": clock.iso(r.escalated_at),
    }


# --- reads ----------------------------------------------------------------------------------
def get_cart(session: Session, buyer_id: int) -> dict:
    rows = session.scalars(
        select(CartItem)
        .where(CartItem.buyer_id == buyer_id)
        .order_by(CartItem.updated_at, CartItem.product_id)
    ).all()
    return {"items": [{"product_id": r.product_id, "quantity": r.quantity} for r in rows]}


def checkout_replay(session: Session, buyer_id: int, key: str) -> dict | None:
    """The orders of an earlier checkout with the same key, or None."""
    checkout = session.scalars(
        select(Checkout).where(Checkout.buyer_id == buyer_id, Checkout.key == key)
    ).first()
    if checkout is None:
        return None
    orders = sorted(  # in the checkout's order (ids are random; item ids are sequential)
        session.scalars(select(Order).where(Order.checkout_id == checkout.id)).all(),
        key=lambda o: min((i.id for i in o.items), default=0),
    )
    return {
        "checkout_id": checkout.id,
        "replayed": True,
        "orders": [order_summary(o) for o in orders],
    }


def get_order(session: Session, order_id: int, viewer: Viewer) -> dict:
    """The order with items, history and refunds; masked for the keeper."""
    order = load_order(session, order_id)
    relation = viewer_relation(order, viewer)
    history = session.scalars(
        select(OrderHistory).where(OrderHistory.order_id == order_id).order_by(OrderHistory.id)
    ).all()
    refunds = session.scalars(
        select(Refund).where(Refund.order_id == order_id).order_by(Refund.created_at, Refund.id)
    ).all()
    out = order_dict(order, relation, history)
    out["refunds"] = [refund_dict(r) for r in refunds]
    return out


# --- cursor paging, newest first ---------------------------------------------------------------
# Ids are random (shared.ids), so "newest first" is (created_at, id) descending and the cursor
# names the last row's place in that order: "<created_at in µs since the epoch>_<id>".
Cursor = tuple[datetime, int]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def encode_cursor(created_at: datetime, row_id: int) -> str:
    at = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)  # SQLite: naive
    return f"{(at - _EPOCH) // _MICRO}_{row_id}"


def decode_cursor(text: str) -> Cursor:
    """The cursor's (created_at, id); ValueError when it is not one of ours."""
    micros, _, row_id = text.partition("_")
    if not micros.lstrip("-").isdigit() or not row_id.isdigit():
        raise ValueError(text)
    return _EPOCH + int(micros) * _MICRO, int(row_id)


def _newest_first(stmt: Any, model: Any, cursor: Cursor | None, limit: int) -> Any:
    if cursor is not None:
        at, row_id = cursor
        stmt = stmt.where(
            or_(model.created_at < at, and_(model.created_at == at, model.id < row_id))
        )
    return stmt.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)


def _page(rows: Sequence[Any], limit: int, dicts: list[dict]) -> dict:
    last = rows[limit - 1] if len(rows) > limit else None
    return {
        "items": dicts,
        "next_cursor": encode_cursor(last.created_at, last.id) if last is not None else None,
    }


def list_orders(session: Session, viewer: Viewer, q: ListQuery, cursor: Cursor | None) -> dict:
    """A member's purchases (``as=keeper``: their shop's orders, masked), a supplier's orders,
    everything for the platform; newest first, cursor-paged."""
    stmt = select(Order)
    if viewer.role == "member":
        if q.as_ == "keeper":
            stmt = stmt.where(Order.keeper_member_id == int(viewer.id))
            relation = domain.KEEPER_VIEW
        else:
            stmt = stmt.where(Order.buyer_id == int(viewer.id))
            relation = domain.BUYER
    elif viewer.role == "supplier":
        stmt = stmt.where(Order.supplier_id == int(viewer.id))
        relation = domain.SUPPLIER_VIEW
    else:
        relation = domain.ADMIN
    if q.status:
        stmt = stmt.where(Order.status == q.status)
    rows = session.scalars(_newest_first(stmt, Order, cursor, q.limit)).all()
    return _page(rows, q.limit, [order_dict(o, relation) for o in rows[: q.limit]])


def get_refund(session: Session, refund_id: int, viewer: Viewer) -> dict:
    refund = session.get(Refund, refund_id)
    if refund is None:
        raise not_found("refund", refund_id)
    viewer_relation(load_order(session, refund.order_id), viewer, ("refund", refund_id))
    return refund_dict(refund)


def order_parties(session: Session, order_id: int) -> dict:
    """The order's parties, state and items as snapshotted at checkout (for messages, which
    routes buyers' questions and shows the product facts as they were sold)."""
    order = load_order(session, order_id)
    return {
        "order_id": order.id,
        "status": order.status,
        "buyer_id": order.buyer_id,
        "supplier_id": order.supplier_id,
        "shop_id": order.shop_id,
        "shop_number": order.shop_number,
        "share_id": order.share_id,
        "keeper_member_id": order.keeper_member_id,
        "self_referral": order.self_referral,
        "items": [
            {
                "product_id": i.product_id,
                "title": i.title,
                "description": i.description,
                "brand": i.brand,
                "category": i.category,
                "image_url": i.image_url,
                "quantity": i.quantity,
                "price_paid_fen": i.unit_price_fen,
                "amount_fen": i.amount_fen,
            }
            for i in order.items
        ],
    }


def list_payment_conflicts(session: Session, q: ListQuery, cursor: Cursor | None) -> dict:
    """Payment ids presented for an order they do not belong to (operators), newest first."""
    stmt = select(PaymentConflict)
    if cursor is not None:  # conflicts are operator records with sequential ids
        stmt = stmt.where(PaymentConflict.id < cursor[1])
    rows = session.scalars(stmt.order_by(PaymentConflict.id.desc()).limit(q.limit + 1)).all()
    page = [
        {
            "id": c.id,
            "provider": c.provider,
            "payment_id": c.payment_id,
            "order_id_claimed": c.order_id_claimed,
            "order_id_owning": c.order_id_owning,
            "amount_fen": c.amount_fen,
            "at": clock.iso(c.at),
            "raw_callback": c.raw_callback,
        }
        for c in rows[: q.limit]
    ]
    last = rows[q.limit - 1] if len(rows) > q.limit else None
    return {"items": page, "next_cursor": encode_cursor(last.at, last.id) if last else None}
