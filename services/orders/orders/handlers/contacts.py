"""Who handles what for an order, and the buyer's inquiries routed to the right party.

Pre-sales questions go to the keeper (product facts at hand), shipping and refunds to the
supplier; after shipping a product question is about the item the buyer holds, so the
supplier answers it (``domain.route_inquiry``). An order without a shop has no keeper.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import eventlet

from orders import domain
from orders.handlers.common import UnitOfWork
from orders.models import Inquiry, Order
from orders.queries import inquiry_dict, viewer_relation
from shared.contracts.orders import InquiryIn, Viewer
from shared.ids import unused_int_id
from shared.validation import not_found

log = logging.getLogger(__name__)


def create_inquiry(
    uow: UnitOfWork, order_id: int, viewer: Viewer, body: InquiryIn, now: datetime
) -> dict:
    """The buyer asks; the question is routed by topic and the order's state."""
    s = uow.session
    order = s.get(Order, order_id)
    if order is None:
        raise not_found("order", order_id)
    domain.require(viewer_relation(order, viewer), domain.BUYER)
    routed = domain.route_inquiry(body.topic, order.status, order.keeper_member_id is not None)
    inquiry = Inquiry(
        id=unused_int_id(s, Inquiry),
        order_id=order.id,
        buyer_id=order.buyer_id,
        topic=body.topic,
        text=body.text,
        routed_to=routed,
        order_status=order.status,
        shop_id=order.shop_id,
        keeper_member_id=order.keeper_member_id,
        supplier_id=order.supplier_id,
        created_at=now,
    )
    s.add(inquiry)
    s.flush()
    return inquiry_dict(inquiry)


def contacts(catalog: Any, shop: Any, facts: dict) -> dict:
    """The order's contacts (``facts``: ``queries.contact_facts``): the supplier's from the
    catalog, the keeper's from the shop service (asked in parallel)."""
    shop_id, supplier_id, status = facts["shop_id"], facts["supplier_id"], facts["status"]
    keeper_gt = (
        eventlet.spawn(keeper_contact, shop, shop_id, facts["shop_number"])
        if shop_id is not None
        else None
    )
    supplier = catalog.get_supplier_contact(supplier_id)
    keeper = keeper_gt.wait() if keeper_gt is not None else None
    if keeper is not None:
        pre_sales = {
            "role": "keeper",
            "shop_id": shop_id,
            "shop_number": keeper.get("shop_number"),
            "display_name": keeper.get("display_name"),
            "nickname": keeper.get("nickname"),
            "phone": keeper.get("phone"),
            "handles": ["product questions before shipping", "other questions before shipping"],
        }
    else:
        pre_sales = {
            "role": "supplier",
            "supplier_id": supplier_id,
            "name": supplier.get("name"),
            "phone": supplier.get("phone"),
            "handles": ["everything: this order came without a shop"],
        }
    after_sales = {
        "role": "supplier",
        "supplier_id": supplier_id,
        "name": supplier.get("name"),
        "phone": supplier.get("phone"),
        "wechat": supplier.get("wechat"),
        "email": supplier.get("email"),
        "handles": ["shipping", "refunds and returns", "questions about the received item"],
    }
    return {
        "order_id": facts["order_id"],
        "status": status,
        "viewer": facts["viewer"],
        "pre_sales": pre_sales,
        "after_sales": after_sales,
        "product_facts": {"items": facts["items"], "snapshotted_at": "checkout"},
        "handles": domain.handles(status, keeper is not None),
    }


def keeper_contact(shop: Any, shop_id: int, shop_number: str | None) -> dict:
    """The keeper's contact from the shop service; when it cannot answer, what the order
    itself knows (the shop and its number) so the buyer still learns who handles what."""
    try:
        return dict(shop.get_keeper_contact(shop_id))
    except Exception as exc:
        log.warning("keeper contact of shop %s unavailable: %s", shop_id, exc)
        return {
            "shop_id": shop_id,
            "shop_number": shop_number,
            "display_name": None,
            "nickname": None,
            "phone": None,
            "unavailable": True,
        }
