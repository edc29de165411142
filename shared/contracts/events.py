"""Integration events (v1): the ``data`` of each envelope, by source service and type.

Envelope (``shared.db.envelope``): ``{id, type, version, source, occurred_at, correlation_id,
data}``. Consumers validate ``data`` with these models (``extra="allow"`` so producers may add
fields without breaking them; removing or renaming a field needs a new version).
All money is integer fen, all rates basis points, all instants ISO-8601 UTC strings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class EventData(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- catalog --------------------------------------------------------------------------------
class ProductSnapshot(EventData):
    """catalog: ``product_listed`` / ``product_changed`` / ``product_delisted`` all carry the
    full current snapshot; ``available`` = listed, in stock and its supplier active."""

    product_id: int
    supplier_id: int
    title: str
    category: str
    price_fen: int
    commission_bps: int
    stock: int
    status: Literal["listed", "delisted"]
    available: bool
    image_url: str | None = None
    brand: str | None = None
    description: str | None = None
    commission_fen: int | None = None  # price_fen × commission_bps, what a keeper earns per unit
    image_ref: str | None = None  # an uploaded image (catalog get_image), when there is one
    # the facts keepers answer buyers with (PUT /products/{id}/faq); None: an older message
    faq: list[dict[str, str]] | None = None  # [{q, a}]
    specs: dict[str, str] | None = None
    after_sales_policy: str | None = None


class SupplierChanged(EventData):
    """catalog: ``supplier_activated`` / ``supplier_suspended``."""

    supplier_id: int
    name: str
    status: str
    reason: str | None = None  # supplier_suspended: why (the admin's note), when given


# --- shop -----------------------------------------------------------------------------------
class ShopChanged(EventData):
    """shop: ``shop_opened`` / ``shop_activated``."""

    shop_id: int
    member_id: int
    shop_number: str
    display_name: str
    status: str
    level: str
    verification_ref: str | None = None  # shop_activated: the identity check's reference
    # the keeper's fingerprints (shared.fingerprints: salted hashes, never the raw values), so
    # payouts can tell a buyer who is the keeper under another account (fraud rules)
    keeper_phone_fp: str | None = None
    keeper_address_fp: str | None = None


class ShopSuspension(EventData):
    """shop: ``shop_suspended`` / ``shop_reinstated`` — the shop stopped (or resumed) selling
    and earning: an admin suspended the shop itself (``cause: "shop"``) or its keeper
    (``cause: "keeper"``). ``suspended`` is the shop's state after the event."""

    shop_id: int
    member_id: int
    shop_number: str
    suspended: bool
    cause: Literal["shop", "keeper"]
    reason: str
    by: str  # who decided: "admin:<sub>"
    at: str


class SelectionChanged(EventData):
    """shop: ``selection_changed``."""

    shop_id: int
    product_id: int
    selected: bool
    reason: str | None = None


class LevelChanged(EventData):
    """shop: ``level_changed`` — payouts applies ``bonus_bps`` to orders paid from now on."""

    shop_id: int
    month: str  # "2026-10": the month of sales the level was computed from
    old_level: str
    new_level: str
    bonus_bps: int


# --- share ----------------------------------------------------------------------------------
class ShareVisit(EventData):
    share_id: str
    shop_id: int
    product_id: int
    visitor_id: str | None = None
    kind: Literal["landing", "scan", "resolve"]
    at: str


class ShareVisitsRecorded(EventData):
    """share: ``share_visits_recorded`` — a batch of visits (recorded off the request path)."""

    visits: list[ShareVisit]


# --- orders ---------------------------------------------------------------------------------
class OrderLine(EventData):
    product_id: int
    title: str
    quantity: int
    unit_price_fen: int
    amount_fen: int
    commission_bps: int  # the product's rate, snapshotted at checkout
    # the attributing shop carried (had selected) this product at checkout; None: not known
    # (no shop, or a message older than the fact) — payouts decides what earns commission
    carried: bool | None = None


class RefundItem(EventData):
    """One item of a refund: how much of that order line's amount is refunded."""

    product_id: int
    amount_fen: int


class OrderPaid(EventData):
    """orders: ``order_paid``."""

    order_id: int
    buyer_id: int
    supplier_id: int
    shop_id: int | None
    share_id: str | None
    self_referral: bool
    paid_fen: int
    lines: list[OrderLine]
    paid_at: str
    keeper_member_id: int | None = None
    shop_number: str | None = None
    payment_id: str | None = None
    total_fen: int | None = None
    # the buyer's fingerprints (shared.fingerprints: salted hashes of the delivery phone, the
    # normalised delivery address and the landing-page visitor id) for payouts' fraud rules
    buyer_phone_fp: str | None = None
    buyer_address_fp: str | None = None
    buyer_visitor_fp: str | None = None
    # the order's stock reservation at the catalog: the catalog commits it on this event
    # (idempotent); None: an older message (its stock was committed by orders' RPC)
    reservation_id: str | None = None
    # True: the order's stock came from orders' pool of units the catalog granted (there is no
    # reservation at the catalog: it records the sale under ``reservation_id`` on this event)
    allotted: bool = False


class StockCommitRefused(EventData):
    """catalog: ``stock_commit_refused`` — a paid order's stock could not be committed on
    ``order_paid``: its hold lapsed and the stock is gone (``reservation_expired``) or it was
    never reserved (``reservation_not_found``). Orders marks the order ``commit_refused`` (the
    supplier refunds or restocks)."""

    order_id: int
    supplier_id: int
    reservation_id: str
    reason: str
    at: str


class OrderStateChanged(EventData):
    """orders: ``order_shipped`` / ``order_received`` / ``order_completed`` /
    ``order_cancelled`` / ``order_expired``."""

    order_id: int
    supplier_id: int
    shop_id: int | None
    status: str
    at: str
    # order_received: when the after-sales window (orders' rule after_sales_days) closes;
    # payouts settles from this instant, so the window has one owner.
    after_sales_until: str | None = None
    buyer_id: int | None = None
    share_id: str | None = None
    note: str | None = None  # why (e.g. "auto-confirmed", "unpaid in time")


class OrderRefunded(EventData):
    """orders: ``order_refunded`` — an approved refund (partial or full)."""

    order_id: int
    refund_id: int
    supplier_id: int
    shop_id: int | None
    amount_fen: int
    paid_fen: int
    refunded_total_fen: int
    at: str
    status: str | None = None  # the order's status after the refund
    shipped: bool | None = None  # the goods had left the warehouse
    buyer_id: int | None = None
    # what this refund (``amount_fen``) refunds of each item; None: a message older than
    # item refunds (payouts then spreads the amount over the items)
    items: list[RefundItem] | None = None


class RefundRequested(EventData):
    """orders: ``refund_requested`` — a buyer asked for a refund; until the supplier decides
    (``refund_decided``) payouts holds the order's accrual (``refund_open``)."""

    order_id: int
    refund_id: int
    supplier_id: int
    shop_id: int | None
    amount_fen: int
    at: str
    items: list[RefundItem] | None = None
    buyer_id: int | None = None


class RefundEscalated(EventData):
    """orders: ``refund_escalated`` — the supplier did not decide a refund by its deadline and
    ``refund_timeout_action`` is ``escalate``: the platform's operators decide it now. The buyer
    and the supplier are told (messages)."""

    order_id: int
    refund_id: int
    supplier_id: int
    amount_fen: int
    at: str
    buyer_id: int | None = None


class RefundDecided(EventData):
    """orders: ``refund_decided`` — the supplier approved or rejected a refund request (an
    approval also emits ``order_refunded`` with the money; a rejection only this)."""

    order_id: int
    refund_id: int
    supplier_id: int
    shop_id: int | None
    decision: Literal["approved", "rejected"]
    amount_fen: int
    at: str
    decided_by: str | None = None


# --- payouts --------------------------------------------------------------------------------
class CommissionSettled(EventData):
    """payouts: ``commission_settled`` — an order's commission became settleable."""

    order_id: int
    shop_id: int
    amount_fen: int
    sales_fen: int
    settled_at: str


class PayoutPaid(EventData):
    """payouts: ``payout_paid``."""

    payout_id: int
    shop_id: int
    amount_fen: int
    run_id: int


# --- the registry: every event type a service may emit, and its contract ----------------------
# --- gateway (test mode only) ---------------------------------------------------------------
class ClockMoved(EventData):
    """gateway: ``clock_moved``, broadcast to every instance of every service when
    ``POST /api/v1/admin/clock`` moves the test clock (``shared.clocksync``). ``offset_seconds``
    is added to real time; ``version`` orders moves (an older one is ignored)."""

    offset_seconds: float
    version: int
    now: str | None = None  # the instant asked for; None: back to real time


EVENTS: dict[str, type[EventData]] = {
    "product_listed": ProductSnapshot,
    "product_changed": ProductSnapshot,
    "product_delisted": ProductSnapshot,
    "supplier_activated": SupplierChanged,
    "supplier_suspended": SupplierChanged,
    "shop_opened": ShopChanged,
    "shop_activated": ShopChanged,
    "selection_changed": SelectionChanged,
    "level_changed": LevelChanged,
    "shop_suspended": ShopSuspension,
    "shop_reinstated": ShopSuspension,
    "share_visits_recorded": ShareVisitsRecorded,
    "order_paid": OrderPaid,
    "stock_commit_refused": StockCommitRefused,
    "order_shipped": OrderStateChanged,
    "order_received": OrderStateChanged,
    "order_completed": OrderStateChanged,
    "order_cancelled": OrderStateChanged,
    "order_expired": OrderStateChanged,
    "order_refunded": OrderRefunded,
    "refund_requested": RefundRequested,
    "refund_escalated": RefundEscalated,
    "refund_decided": RefundDecided,
    "commission_settled": CommissionSettled,
    "payout_paid": PayoutPaid,
    "clock_moved": ClockMoved,
}


def contract_of(event_type: str) -> type[EventData]:
    """The contract model of ``event_type``; KeyError names an event nobody declared."""
    try:
        return EVENTS[event_type]
    except KeyError:
        raise KeyError(
            f"event type {event_type!r} has no contract in shared/contracts/events.py (EVENTS)"
        ) from None
