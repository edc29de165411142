"""Payloads of the orders service (carts, checkout, payments, refunds, inquiries).

The gateway validates request bodies with these models (so the OpenAPI document shows them) and
the orders service validates its RPC payloads with the same ones. Prices never come from the
client: checkout takes product ids and quantities only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.text import Text

# client-made keys and ids: printable ASCII, no spaces (never control characters)
TOKEN_PATTERN = r"^[!-~]+$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LineIn(_In):
    product_id: int = Field(..., ge=1, le=2**31 - 1, description="a 32-bit database id")
    quantity: int = Field(..., ge=1, le=999)


class AddressIn(_In):
    name: Text(100, min_chars=1)
    phone: Text(40, min_chars=5)
    line: Text(500, min_chars=1)


class CheckoutIn(_In):
    """``POST /api/v1/orders``: one order per supplier is created."""

    items: list[LineIn] = Field(..., min_length=1, max_length=100)
    share_code: Text(500, multiline=True) | None = Field(
        None, description="the share code (口令) as pasted; text around it is fine"
    )
    shop_number: Text(20) | None = Field(
        None, description="a shop number (店铺号) typed by the buyer"
    )
    visitor_id: str | None = Field(
        None,
        max_length=100,
        pattern=TOKEN_PATTERN,
        description="landing-page visitor id (for last-visit attribution); "
        "defaults to the xp_vid cookie / X-Xiaopu-Visitor header",
    )
    address: AddressIn
    checkout_key: str | None = Field(
        None,
        max_length=100,
        pattern=TOKEN_PATTERN,
        description="client key: the same key returns the same orders",
    )


class CartIn(_In):
    """``PUT /api/v1/cart``: replaces the cart."""

    items: list[LineIn] = Field(
        ..., max_length=100, description="the whole cart; an empty list empties it"
    )


class ShipIn(_In):
    carrier: Text(100, min_chars=1)
    tracking_no: Text(100, min_chars=1)


class RefundItemIn(_In):
    product_id: int = Field(..., ge=1)
    amount_fen: int = Field(..., ge=1)


class RefundIn(_In):
    amount_fen: int = Field(..., ge=1)
    reason: Text(2000, min_chars=1, multiline=True)
    items: list[RefundItemIn] | None = Field(
        None,
        max_length=100,
        description="what the refund refunds of each item (sum = amount_fen; each at most the "
        "item's paid amount minus what is already refunded or asked); default: the amount "
        "spread over the order's items by what is left of each, largest remainder to the fen",
    )


class RefundQuery(BaseModel):
    """``GET /api/v1/refunds``: the supplier's refunds (the platform: everyone's). Waiting ones
    (``status=requested``, the default) come most urgent first (``decide_by``); decided ones
    newest first. ``escalated=true``: only those past their deadline in the platform's queue."""

    model_config = ConfigDict(extra="ignore")
    status: Literal["requested", "approved", "rejected"] = "requested"
    escalated: bool | None = None
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=100)


class InquiryIn(_In):
    topic: Literal["product", "shipping", "refund", "other"]
    text: Text(5000, min_chars=1, multiline=True)


class PaymentCallback(BaseModel):
    """What the payment provider POSTs (signed) to ``/api/v1/payments/callback``."""

    model_config = ConfigDict(extra="allow")
    payment_id: str = Field(..., min_length=1, max_length=100)
    order_id: int
    amount_fen: int
    status: Literal["succeeded", "failed"] = "succeeded"
    paid_at: str | None = None
    provider: str = "sandbox"


class Viewer(BaseModel):
    """Who is asking (the gateway passes the token's role and subject)."""

    role: Literal["member", "supplier", "admin"]
    id: str


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = None
    status: str | None = Field(None, max_length=40, pattern=r"^[a-z_]+$")
    as_: Literal["buyer", "keeper"] | None = Field(None, alias="as")


class ReclaimIn(_In):
    """``orders.reclaim_stock``: the catalog takes back the free pool units of these products
    and revokes those of its grants whose answers orders has not applied yet."""

    reclaim_id: str = Field(min_length=1, max_length=64)
    product_ids: list[int] = Field(min_length=1, max_length=1000)
    grant_ids: list[str] = Field(default_factory=list, max_length=100_000)
