"""Contact without exposure: who handles what for an order, and where a pre-sale question goes.

The buyer reaches the keeper through the thread, never by the keeper's personal phone (the
registration phone identity and shop keep). The supplier's contact is the service contact it
published when it registered (phone, WeChat, email) and is shown for after-sales. Moved here
from orders with the routing rule (``domain.route_inquiry`` / ``domain.handles``).
"""

from __future__ import annotations

import logging
from typing import Any

from messages import domain
from shared.contracts.messages import PreSaleThreadIn, Viewer
from shared.errors import NotFound, ValidationFailed, XiaopuError
from shared.validation import not_found

log = logging.getLogger(__name__)


def order_party(order: dict, viewer: Viewer) -> str:
    """buyer / keeper / supplier / platform; 404 for anyone else (as for a missing order)."""
    parties = domain.Parties(
        int(order["buyer_id"]), order.get("keeper_member_id"), int(order["supplier_id"]), True
    )
    party = domain.party_of(parties, viewer.role, viewer.id)
    if party is None:
        raise not_found("order", order["order_id"])
    return party


def shop_of(share: Any, shop: Any, body: PreSaleThreadIn) -> tuple[dict, str | None]:
    """The shop a pre-sale question came from: the share code's shop, else the shop number."""
    share_id = None
    number = body.shop_number
    if body.share_code:
        found = share.resolve(body.share_code, None, None)  # look up only: not a visit
        if not found:
            raise NotFound("no share matches this code", code="share_not_found")
        number, share_id = found["shop_number"], found.get("share_id")
    if not number:
        raise ValidationFailed(
            "say where the question comes from",
            details=[{"field": "share_code", "message": "give a share_code or a shop_number"}],
        )
    return shop.get_shop_by_number(number), share_id


def shop_card(shop: Any, shop_id: int | None) -> dict | None:
    """The shop's public face (name, number); None without a shop or when shop cannot
    answer (the card still says who handles what)."""
    if shop_id is None:
        return None
    try:
        return dict(shop.get_shop(shop_id))
    except XiaopuError as exc:
        log.warning("shop %s unavailable for contacts: %s", shop_id, exc)
        return {"id": shop_id, "unavailable": True}


def order_contacts(
    order: dict, party: str, supplier: dict, shop: dict | None, asked: list[dict]
) -> dict:
    has_keeper = order.get("keeper_member_id") is not None
    thread = {
        "channel": "thread",
        "ask": f"/api/v1/orders/{order['order_id']}/inquiries",
        "threads": asked,
    }
    service_contact = {
        "phone": supplier.get("phone"),
        "wechat": supplier.get("wechat"),
        "email": supplier.get("email"),
    }
    if has_keeper and shop is not None:
        pre_sales = {
            "role": "keeper",
            "shop_id": order.get("shop_id"),
            "shop_number": shop.get("shop_number") or order.get("shop_number"),
            "display_name": shop.get("display_name"),
            "contact": thread,
            # a keeper's personal phone is never shown; a published service contact would be
            "service_phone": None,
            "service_wechat": None,
            "handles": ["product questions before shipping", "other questions before shipping"],
        }
    else:
        pre_sales = {
            "role": "supplier",
            "supplier_id": order["supplier_id"],
            "name": supplier.get("name"),
            "contact": thread,
            **service_contact,
            "handles": ["everything: this order came without a shop"],
        }
    after_sales = {
        "role": "supplier",
        "supplier_id": order["supplier_id"],
        "name": supplier.get("name"),
        "contact": thread,
        **service_contact,
        "handles": ["shipping", "refunds and returns", "questions about the received item"],
    }
    return {
        "order_id": order["order_id"],
        "status": order["status"],
        "viewer": party,
        "pre_sales": pre_sales,
        "after_sales": after_sales,
        "product_facts": {"items": order.get("items") or [], "snapshotted_at": "checkout"},
        "handles": domain.handles(order["status"], has_keeper),
    }
