"""The orders rules of PRODUCT.md ("Orders and money"), in plain Python (no nameko, no SQLAlchemy).

State machine (every transition goes through ``transition``; an illegal one is a 409 Conflict
carrying the current state)::

    created ──pay──▶ paid ──ship──▶ shipped ──receive──▶ received ──complete──▶ completed
       │               │               │                    │
       ├─cancel──▶ cancelled            └──── refund (full) ─┴──▶ refunded
       └─expire──▶ expired        paid ──refund (full)──▶ refunded

A partial refund does not change the status: the order keeps its state and a ``refunded_fen``
total. ``received`` happens when the buyer confirms, or automatically ``auto_confirm_days``
after shipping; ``completed`` when the after-sales window (``after_sales_days`` after receipt)
closes — but not while a refund request is still waiting for the supplier's decision.

Attribution (which shop and share an order came from), decided once per checkout:

1. a share code the buyer pasted (share ``resolve``), else
2. a shop number the buyer typed (shop ``get_shop_by_number``), else
3. the buyer's last landing visit within ``attribution_window_days`` (share ``last_visit``).

Only an ACTIVE shop gets attribution; otherwise the order is placed without a shop. A keeper
buying through their own shop/share is a *self-referral*: the order keeps the shop and share
(so stats stay true) but carries ``self_referral: true`` and earns no commission (payouts reads
the flag). Attribution covers every order of the checkout (the shop brought the buyer), also a
product the shop no longer selects, or never selected: the share existed and led to the sale,
so it is still attributed. Whether the shop carries each product is recorded per item (see
"Carried items" below); it does not change the attribution.

Late payments: a payment callback for an order that already expired or was cancelled is NOT
applied (the stock was released; resurrecting it silently could oversell). The payment is
recorded with ``refund_due`` so the money goes back to the buyer, and the callback answers
409. A second, different payment for an already-paid order is handled the same way.
A repeated callback with the same payment id changes nothing (idempotent).

Refunds: the buyer asks for any amount 1..(paid − approved − pending); before or after
shipping; never after ``completed`` (the after-sales window closed) nor on an unpaid, cancelled,
expired or fully refunded order. The supplier approves or rejects. An approved refund goes back
through the payment provider; when it makes the order fully refunded before shipping, the
stock reservation is released back to the catalog. A refund names its items
(``refund_items``): each named amount at most what is left of that item (its amount minus
what approved and pending refunds took of it), their sum the refund's amount; a refund that
names none is spread over the items in proportion to what is left of each, largest remainder
to the fen (``spread_refund``). The request emits ``refund_requested`` and the decision
``refund_decided`` (payouts holds the order's commission meanwhile); an approval also emits
``order_refunded`` with the items, so payouts reverses each item's commission at its own rate.

Carried items: an order attributed to a shop records, per item, whether the shop had selected
(carried) that product at checkout (``carried``); the order is attributed either way, and
``order_paid`` carries the fact — payouts decides what earns commission.

Inquiries (who answers the buyer) are the messages service's: it asks ``order_parties`` for
the order's parties and state and routes the question by its own rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.errors import Conflict, Forbidden, RuleViolation, rule
from shared.money import allocate
from shared.rules import ConfiguredRules
from shared.validation import not_found

# --- rules from configuration ----------------------------------------------------------------


@dataclass(frozen=True)
class OrderRules(ConfiguredRules):
    """``RULES:`` of orders/config.yml; orders is the ONE owner of each of these keys. Other
    services get them in events (``order_received.after_sales_until``) or RPC arguments
    (``reserve_stock(..., hold_seconds=...)``, ``last_visit(visitor, since)``)."""

    attribution_window_days: int = 7  # XIAOPU_ATTRIBUTION_WINDOW_DAYS
    unpaid_expiry_minutes: int = 30  # XIAOPU_UNPAID_EXPIRY_MINUTES
    auto_confirm_days: int = 10  # XIAOPU_AUTO_CONFIRM_DAYS
    after_sales_days: int = 15  # XIAOPU_AFTER_SALES_DAYS
    max_items_per_checkout: int = 100  # XIAOPU_MAX_ITEMS_PER_CHECKOUT
    max_quantity_per_line: int = 999  # XIAOPU_MAX_QUANTITY_PER_LINE
    # the supplier decides a refund within this many hours of the request ...
    refund_decision_hours: int = 48  # XIAOPU_REFUND_DECISION_HOURS
    # ... else: "approve" (PRODUCT.md: the supplier decides, with a timeout) or "escalate"
    refund_timeout_action: str = "approve"  # XIAOPU_REFUND_TIMEOUT_ACTION
    # a checkout whose lines its stock pool cannot cover asks the catalog for at least this
    # many units of each short product at once (one grant_stock RPC per that many sales)
    stock_grant_units: int = 50  # XIAOPU_STOCK_GRANT_UNITS
    # a grant asked but never answered (lost reply, crash) is asked again after this long
    stock_grant_retry_seconds: int = 10  # XIAOPU_STOCK_GRANT_RETRY_SECONDS


# --- the state machine -----------------------------------------------------------------------

CREATED, PAID, SHIPPED, RECEIVED, COMPLETED = "created", "paid", "shipped", "received", "completed"
CANCELLED, EXPIRED, REFUNDED = "cancelled", "expired", "refunded"
STATUSES = (CREATED, PAID, SHIPPED, RECEIVED, COMPLETED, CANCELLED, EXPIRED, REFUNDED)

TRANSITIONS: dict[str, dict[str, str]] = {
    "pay": {CREATED: PAID},
    "cancel": {CREATED: CANCELLED},
    "expire": {CREATED: EXPIRED},
    "ship": {PAID: SHIPPED},
    "receive": {SHIPPED: RECEIVED},
    "complete": {RECEIVED: COMPLETED},
    "refund_fully": {PAID: REFUNDED, SHIPPED: REFUNDED, RECEIVED: REFUNDED},
}

EVENT_OF = {
    PAID: "order_paid",
    SHIPPED: "order_shipped",
    RECEIVED: "order_received",
    COMPLETED: "order_completed",
    CANCELLED: "order_cancelled",
    EXPIRED: "order_expired",
    REFUNDED: "order_refunded",
}

REFUNDABLE = (PAID, SHIPPED, RECEIVED)


def transition(current: str, action: str) -> str:
    """The status after ``action``; Conflict (409) with the current state when illegal."""
    allowed = TRANSITIONS[action]
    if current not in allowed:
        raise Conflict(
            f"cannot {action.replace('_', ' ')} an order that is {current}",
            details={"status": current, "action": action, "allowed_from": sorted(allowed)},
            code="illegal_transition",
        )
    return allowed[current]


# --- time rules ------------------------------------------------------------------------------
# Each rule is a named function; the timers' SQL takes its cut-off instants from them.


def expires_at(created_at: datetime, rules: OrderRules) -> datetime:
    """Unpaid expiry: an order not paid ``unpaid_expiry_minutes`` after checkout expires."""
    return created_at + timedelta(minutes=rules.unpaid_expiry_minutes)


def is_expired(expires: datetime, now: datetime) -> bool:
    return now >= expires


def stock_hold_seconds(rules: OrderRules) -> int:
    """How long the catalog holds a checkout's stock: exactly as long as the order may stay
    unpaid (the catalog adds its own grace margin and owns no TTL of its own)."""
    return rules.unpaid_expiry_minutes * 60


def grant_wanted(needed: int, rules: OrderRules) -> int:
    """Units to ask the catalog for when the pool cannot cover ``needed`` of a product: at
    least ``stock_grant_units``, so one grant feeds many checkouts."""
    return max(int(needed), rules.stock_grant_units)


def shipped_before_auto_receive(now: datetime, rules: OrderRules) -> datetime:
    """Auto-confirm: an order shipped at or before this instant (``auto_confirm_days`` ago)
    is received automatically now."""
    return now - timedelta(days=rules.auto_confirm_days)


def after_sales_closes(received_at: datetime, rules: OrderRules) -> datetime:
    """The after-sales window closes ``after_sales_days`` after receipt; ``order_received``
    carries this instant (``after_sales_until``) so payouts settles on the same day."""
    return received_at + timedelta(days=rules.after_sales_days)


def received_before_completion(now: datetime, rules: OrderRules) -> datetime:
    """Completion: orders received at or before this instant have their after-sales window
    closed now."""
    return now - timedelta(days=rules.after_sales_days)


def may_complete(pending_refund_fen: int) -> bool:
    """The window stays open while a refund request waits for the supplier's decision."""
    return pending_refund_fen == 0


def attribution_since(now: datetime, rules: OrderRules) -> datetime:
    """Attribution window: only a landing visit after this instant attributes a checkout."""
    return now - timedelta(days=rules.attribution_window_days)


# --- checkout --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    product_id: int
    quantity: int


def merge_lines(items: Iterable[dict]) -> list[Line]:
    """The same product twice in a cart is one line with the summed quantity (order kept)."""
    merged: dict[int, int] = {}
    for item in items:
        pid, qty = int(item["product_id"]), int(item["quantity"])
        merged[pid] = merged.get(pid, 0) + qty
    return [Line(pid, qty) for pid, qty in merged.items()]


def check_lines(lines: list[Line], rules: OrderRules) -> None:
    """At least one line and at most ``max_items_per_checkout`` (422): checked before the
    checkout reads anything."""
    if not lines:
        raise RuleViolation("the order has no items", [rule("items_required", "add a product")])
    if len(lines) > rules.max_items_per_checkout:
        raise RuleViolation(
            "too many products in one order",
            [rule("max_items", f"at most {rules.max_items_per_checkout}")],
        )


def check_products(lines: list[Line], products: dict[int, dict], rules: OrderRules) -> None:
    """``check_lines``; every product must exist (422) and be available with enough stock
    (409)."""
    check_lines(lines, rules)
    missing = [ln.product_id for ln in lines if ln.product_id not in products]
    if missing:
        raise RuleViolation(
            "some products do not exist",
            [
                rule("product_exists", f"product {pid} does not exist", product_id=pid)
                for pid in missing
            ],
        )
    bad_qty = [ln for ln in lines if not 1 <= ln.quantity <= rules.max_quantity_per_line]
    if bad_qty:
        raise RuleViolation(
            "a quantity is out of range",
            [
                rule(
                    "quantity_range",
                    f"quantity must be 1..{rules.max_quantity_per_line}",
                    product_id=ln.product_id,
                )
                for ln in bad_qty
            ],
        )
    unavailable = [ln.product_id for ln in lines if not products[ln.product_id].get("available")]
    short = [
        ln.product_id
        for ln in lines
        if ln.product_id not in unavailable
        and products[ln.product_id].get("stock") is not None
        and int(products[ln.product_id]["stock"]) < ln.quantity
    ]
    if unavailable or short:
        details = [{"product_id": p, "reason": "unavailable"} for p in unavailable] + [
            {"product_id": p, "reason": "insufficient_stock", "stock": products[p].get("stock")}
            for p in short
        ]
        raise Conflict(
            "some products cannot be sold right now", details=details, code="products_unavailable"
        )


def split_by_supplier(lines: list[Line], products: dict[int, dict]) -> list[dict]:
    """One order per supplier, lines priced from the catalog (never from the client)."""
    orders: dict[int, dict] = {}
    for ln in lines:
        p = products[ln.product_id]
        order = orders.setdefault(
            int(p["supplier_id"]),
            {"supplier_id": int(p["supplier_id"]), "items": [], "total_fen": 0},
        )
        amount = int(p["price_fen"]) * ln.quantity
        order["items"].append(
            {
                "product_id": ln.product_id,
                "quantity": ln.quantity,
                "unit_price_fen": int(p["price_fen"]),
                "amount_fen": amount,
                "commission_bps": int(p.get("commission_bps") or 0),
                "title": p.get("title") or "",
                "category": p.get("category"),
                "description": p.get("description"),
                "brand": p.get("brand"),
                "image_url": p.get("image_url"),
            }
        )
        order["total_fen"] += amount
    return list(orders.values())


@dataclass(frozen=True)
class Attribution:
    shop_id: int | None = None
    share_id: str | None = None
    shop_number: str | None = None
    keeper_member_id: int | None = None
    self_referral: bool = False
    source: str | None = None  # share_code | shop_number | visit
    dropped_reason: str | None = None  # why a found shop got no attribution


def attribute(
    shop: dict | None, buyer_id: int, share_id: str | None, source: str | None
) -> Attribution:
    """Attribution for a checkout given the shop found (or None)."""
    if shop is None:
        return Attribution()
    if shop.get("status") != "active":
        return Attribution(source=source, dropped_reason=f"shop_{shop.get('status')}")
    member_id = int(shop["member_id"]) if shop.get("member_id") is not None else None
    return Attribution(
        shop_id=int(shop["id"]),
        share_id=share_id,
        shop_number=shop.get("shop_number"),
        keeper_member_id=member_id,
        self_referral=is_self_referral(member_id, buyer_id),
        source=source,
    )


def is_self_referral(keeper_member_id: int | None, buyer_id: int) -> bool:
    """A keeper buying through their own shop: attributed (stats stay true), no commission."""
    return keeper_member_id is not None and keeper_member_id == int(buyer_id)


# --- payments --------------------------------------------------------------------------------

APPLY, DUPLICATE, LATE = "apply", "duplicate", "late"


def payment_id_taken(owning_order_id: int | None, order_id: int) -> bool:
    """A provider's payment id belongs to ONE order: the same id presented for another order
    is refused (409 ``payment_id_conflict``) and recorded for operators; for its own order it
    is a duplicate (nothing changes)."""
    return owning_order_id is not None and owning_order_id != order_id


def payment_decision(status: str, amount_fen: int, total_fen: int, already_seen: bool) -> str:
    """What a verified payment callback does to an order.

    ``duplicate``: this payment id was processed already → nothing changes.
    ``late``: the order is no longer payable (expired, cancelled, paid by another payment)
    → not applied, recorded as refund due, 409.
    ``apply``: the order becomes paid. An amount mismatch is a 422 and changes nothing.
    """
    if already_seen:
        return DUPLICATE
    if amount_fen != total_fen:
        raise RuleViolation(
            "the paid amount does not match the order total",
            [
                rule(
                    "amount_matches",
                    f"paid {amount_fen} fen, order total is {total_fen} fen",
                    paid_fen=amount_fen,
                    total_fen=total_fen,
                )
            ],
        )
    if status != CREATED:
        return LATE
    return APPLY


# --- refunds ---------------------------------------------------------------------------------


def refundable_fen(paid_fen: int, approved_fen: int, pending_fen: int) -> int:
    return max(0, paid_fen - approved_fen - pending_fen)


def check_refund_request(
    status: str, amount_fen: int, paid_fen: int, approved_fen: int, pending_fen: int
) -> None:
    if status == COMPLETED:
        raise Conflict(
            "the after-sales window has closed for this order",
            details={"status": status},
            code="after_sales_closed",
        )
    if status not in REFUNDABLE:
        raise Conflict(
            f"an order that is {status} cannot be refunded",
            details={"status": status},
            code="illegal_transition",
        )
    limit = refundable_fen(paid_fen, approved_fen, pending_fen)
    if amount_fen <= 0 or amount_fen > limit:
        raise RuleViolation(
            "the refund amount is out of range",
            [
                rule(
                    "refund_limit",
                    f"refund must be 1..{limit} fen (paid {paid_fen}, approved "
                    f"{approved_fen}, pending {pending_fen})",
                    field="amount_fen",
                    max_fen=limit,
                )
            ],
        )


def check_refund_decision(refund_status: str) -> None:
    if refund_status != "requested":
        raise Conflict(
            f"the refund is already {refund_status}",
            details={"status": refund_status},
            code="refund_decided",
        )


# --- refund deadlines --------------------------------------------------------------------------
REFUND_TIMEOUT_ACTIONS = ("approve", "escalate")


def refund_decide_by(requested_at: datetime, rules: OrderRules) -> datetime:
    """When the supplier's decision on a refund is due: ``refund_decision_hours`` after the
    request (stored with the refund, so a later change of the rule moves no promised date)."""
    return requested_at + timedelta(hours=rules.refund_decision_hours)


def refund_overdue(decide_by: datetime | None, now: datetime) -> bool:
    """The timer acts on a refund still undecided at its ``decide_by``."""
    return decide_by is not None and decide_by <= now


def refund_timeout_action(rules: OrderRules) -> str:
    """What happens to an undecided refund past its deadline: ``approve`` (the buyer gets the
    money back) or ``escalate`` (the platform's queue decides). A misconfigured action
    escalates: no money moves on a typo."""
    action = str(rules.refund_timeout_action or "").strip().lower()
    return action if action in REFUND_TIMEOUT_ACTIONS else "escalate"


def status_after_refund(status: str, paid_fen: int, refunded_total_fen: int) -> str:
    """Full refund → refunded; partial → the order keeps its status."""
    if refunded_total_fen >= paid_fen:
        return transition(status, "refund_fully")
    return status


def spread_refund(amount_fen: int, left: dict[int, int]) -> dict[int, int]:
    """The default split of a refund that names no items: in proportion to what is left of
    each item (its amount, for a first refund), largest remainder to the fen, ties to the
    earlier item (``shared.money.allocate``). Never more than what is left of an item."""
    ids = list(left)
    shares = allocate(min(amount_fen, sum(left.values())), [left[i] for i in ids])
    return {pid: fen for pid, fen in zip(ids, shares, strict=True) if fen}


def refund_items(amount_fen: int, named: list[dict] | None, left: dict[int, int]) -> dict[int, int]:
    """What a refund of ``amount_fen`` refunds of each item: the items it names (each a
    product of the order, named once, at most what is left of it, their sum the amount — 422
    naming each broken rule otherwise), else ``spread_refund``."""
    if not named:
        return spread_refund(amount_fen, left)
    broken = []
    out: dict[int, int] = {}
    for i, item in enumerate(named):
        pid, fen = int(item["product_id"]), int(item["amount_fen"])
        where = f"items[{i}]"
        if pid not in left:
            broken.append(rule("item_in_order", f"product {pid} is not in this order", field=where))
        elif pid in out:
            broken.append(rule("item_once", f"product {pid} is named twice", field=where))
        elif fen > left[pid]:
            broken.append(
                rule(
                    "item_refund_limit",
                    f"at most {left[pid]} fen of product {pid} can still be refunded",
                    field=where,
                    max_fen=left[pid],
                )
            )
        out[pid] = fen
    if sum(int(item["amount_fen"]) for item in named) != amount_fen:
        broken.append(
            rule(
                "items_sum",
                f"the items must add up to the refund's amount_fen ({amount_fen})",
                field="items",
            )
        )
    if broken:
        raise RuleViolation("the refund's items do not fit the order", broken)
    return out


def refund_returns_stock(status_before: str, fully_refunded: bool) -> bool:
    """Goods never left the warehouse and the whole order is refunded → stock goes back."""
    return status_before == PAID and fully_refunded


# Inquiries and contacts (who answers the buyer) moved to the messages service
# (services/messages/messages/domain.py ``route_inquiry``), with the threads they open.

# --- who sees what ---------------------------------------------------------------------------

BUYER, KEEPER_VIEW, SUPPLIER_VIEW, ADMIN = "buyer", "keeper", "supplier", "admin"


def viewer_relation(
    order: dict, role: str, viewer_id: str | int | None, asked: tuple[str, Any] | None = None
) -> str:
    """How the viewer relates to the order. Not at all: the same 404 as a missing order (or as
    the missing ``asked`` thing reached through it, e.g. ``("refund", 7)``), never a 403 — "not
    yours" and "does not exist" must not differ, or ids could be probed."""
    if role == "admin":
        return ADMIN
    vid = str(viewer_id)
    if role == "member":
        if str(order["buyer_id"]) == vid:
            return BUYER
        if order.get("keeper_member_id") is not None and str(order["keeper_member_id"]) == vid:
            return KEEPER_VIEW
    if role == "supplier" and str(order["supplier_id"]) == vid:
        return SUPPLIER_VIEW
    what, ident = asked or ("order", order["id"])
    raise not_found(what, ident)


def require(relation: str, *allowed: str) -> None:
    """403 for a viewer who SEES the order (its keeper, say) but may not do this to it: the
    order's existence is no secret to them, so the refusal tells nothing new."""
    if relation not in allowed and relation != ADMIN:
        raise Forbidden(
            f"only the {' or '.join(allowed)} of this order may do this", code="not_your_order"
        )


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return phone
    if len(phone) <= 7:
        return phone[:1] + "*" * (len(phone) - 1)
    return phone[:3] + "****" + phone[-4:]


def mask_name(name: str | None) -> str | None:
    if not name:
        return name
    return name[0] + "*" * max(1, len(name) - 1)


def mask_line(line: str | None) -> str | None:
    if not line:
        return line
    return line[:3] + "****"


def masked_address(address: dict) -> dict:
    return {
        "name": mask_name(address.get("name")),
        "phone": mask_phone(address.get("phone")),
        "line": mask_line(address.get("line")),
    }
