"""The catalog's payloads: the gateway validates HTTP bodies with them, the catalog service
validates its RPC arguments with the same models (so OpenAPI and RPC agree).

Money is integer fen, rates basis points. Integers are strict (``"100"`` or ``1.5`` is refused
with 422 naming the field); ranges that are platform rules (price > 0, stock >= 0, commission
not below the market rate ...) are checked by ``catalog.domain`` so the 422 names the rule.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from shared.text import Text

# sanity ceilings (the database's integer columns), not platform rules
MAX_FEN = 10**15
MAX_PRICE_FEN = 10**11
MAX_STOCK = 10**9
MAX_HOLD_SECONDS = 30 * 24 * 3600
URL_PATTERN = r"^https?://[^\s\x00-\x1f\x7f]+$"  # no white space, no control characters


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ContactIn(_In):
    """The supplier's after-sales contact (售后), shown to buyers of its products."""

    phone: Text(40, min_chars=3)
    wechat: Text(80) | None = None
    email: Text(200) | None = None


class SupplierIn(_In):
    name: Text(200, min_chars=1)
    registered_capital_fen: StrictInt = Field(
        ge=0, le=MAX_FEN, description="registered capital in fen"
    )
    general_taxpayer: StrictBool = Field(description="general VAT taxpayer (一般纳税人)")
    contact: ContactIn
    brand_authorization_levels: StrictInt | None = Field(
        None,
        ge=0,
        le=100,
        description="length of the brand authorisation chain (0 = the brand owner itself)",
    )
    purchase_records: StrictBool = Field(
        False, description="unbranded goods: traceable purchase records are on file"
    )
    categories: list[Text(60, min_chars=1)] = Field(
        default_factory=list,
        max_length=50,
        description="categories the supplier intends to sell in (decides the deposit)",
    )


class DepositIn(_In):
    amount_fen: StrictInt = Field(gt=0, le=MAX_FEN)


class ProductIn(_In):
    title: Text(200, min_chars=1)
    category: Text(60, min_chars=1)
    price_fen: StrictInt = Field(le=MAX_PRICE_FEN)
    stock: StrictInt = Field(le=MAX_STOCK)
    commission_bps: StrictInt = Field(ge=0, le=10000)
    market_commission_bps: StrictInt = Field(
        ge=0,
        le=10000,
        description=("the same product's commission on the open affiliate market (淘宝客)"),
    )
    reference_price_fen: StrictInt = Field(
        le=MAX_PRICE_FEN, description="the same product's price on other platforms"
    )
    description: Text(5000, multiline=True) | None = None
    brand: Text(200) | None = None
    image_url: str | None = Field(None, max_length=1000, pattern=URL_PATTERN)
    image_base64: str | None = Field(None, description="an uploaded image (PNG/JPEG/GIF/WebP)")


class ProductPatch(_In):
    title: Text(200, min_chars=1) | None = None
    category: Text(60, min_chars=1) | None = None
    price_fen: StrictInt | None = Field(None, le=MAX_PRICE_FEN)
    stock: StrictInt | None = Field(None, le=MAX_STOCK)
    commission_bps: StrictInt | None = Field(None, ge=0, le=10000)
    market_commission_bps: StrictInt | None = Field(None, ge=0, le=10000)
    reference_price_fen: StrictInt | None = Field(None, le=MAX_PRICE_FEN)
    description: Text(5000, multiline=True) | None = None
    brand: Text(200) | None = None
    image_url: str | None = Field(None, max_length=1000, pattern=URL_PATTERN)
    image_base64: str | None = None


class ProductQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    category: Text(60) | None = None
    q: Text(100) | None = None
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(
        None, max_length=200, description="next_cursor of the previous page (of the same sort)"
    )
    sort: Literal["newest", "commission", "sales"] = Field(
        "newest",
        description="newest first; commission: the highest commission in fen first; "
        "sales: the most units sold first",
    )


class ReserveLine(_In):
    product_id: StrictInt = Field(le=2**31 - 1)
    quantity: StrictInt = Field(gt=0, le=100000)
    # the unit price the caller priced the line at (orders: from its read model); given, the
    # line is refused (reason price_changed) unless it is still the product's price
    unit_price_fen: StrictInt | None = Field(None, ge=0)


class ReserveIn(_In):
    reservation_id: str = Field(min_length=1, max_length=64)
    items: list[ReserveLine] = Field(min_length=1, max_length=200)
    hold_seconds: StrictInt | None = Field(
        None,
        gt=0,
        le=MAX_HOLD_SECONDS,
        description="how long the buyer has to pay (orders: its unpaid-order expiry); the "
        "stock goes back on sale the catalog's reservation_grace_seconds after that",
    )


class StockLine(_In):
    """A product and a number of units (``grant_stock`` asks, ``release_stock`` gives back)."""

    product_id: StrictInt = Field(ge=1, le=2**31 - 1)
    quantity: StrictInt = Field(ge=1, le=10000)


class GrantIn(_In):
    """``grant_stock``: units for orders' pool; ``grant_id`` is the caller's (a repeat answers
    the recorded grant)."""

    grant_id: str = Field(min_length=1, max_length=64)
    items: list[StockLine] = Field(min_length=1, max_length=100)


class ReleaseIn(_In):
    """``release_stock``: ``items`` are the lines of an order whose stock came from orders'
    pool (``order_paid.allotted``), refunded before the catalog consumed its ``order_paid``."""

    reservation_id: str = Field(min_length=1, max_length=64)
    paid: StrictBool = False
    items: list[StockLine] | None = Field(None, min_length=1, max_length=200)


class ReclaimItem(BaseModel):
    """orders' ``reclaim_stock`` answer, per product: the free pool units it gave back."""

    product_id: StrictInt
    units: StrictInt = Field(ge=0)


class ReclaimOut(BaseModel):
    """orders' ``reclaim_stock(reclaim_id, product_ids, grant_ids)`` answer: the pool units
    given back per product and the sent grant ids orders had not applied (now revoked)."""

    reclaim_id: str
    items: list[ReclaimItem] = Field(default_factory=list)
    revoked: list[str] = Field(default_factory=list)


class ProductOut(BaseModel):
    """What ``get_product``/``get_products`` and the product endpoints return."""

    id: int
    supplier_id: int
    title: str
    category: str
    description: str | None
    brand: str | None
    price_fen: int
    commission_bps: int
    commission_fen: int
    stock: int
    status: str
    available: bool
    image_url: str | None
    image_ref: str | None
    images: list[str] = Field(
        default_factory=list, description="the gallery in order; the first is the cover"
    )
    units_sold: int = 0
    keeper_earn_fen: int | None = Field(
        None,
        description="browse, for a signed-in keeper: the commission including the keeper's "
        "current level bonus",
    )


class GalleryImageIn(_In):
    """One gallery image: a URL or an upload (base64 PNG/JPEG/GIF/WebP), not both."""

    url: str | None = Field(None, max_length=1000, pattern=URL_PATTERN)
    image_base64: str | None = Field(None, description="an uploaded image (PNG/JPEG/GIF/WebP)")

    @model_validator(mode="after")
    def _one_source(self) -> GalleryImageIn:
        if (self.url is None) == (self.image_base64 is None):
            raise ValueError("give exactly one of url or image_base64")
        return self


class ProductImagesIn(_In):
    """``PUT /api/v1/products/{id}/images``: the whole gallery, in order (the first is the
    cover; an empty list removes every image)."""

    images: list[GalleryImageIn] = Field(..., max_length=9)


class SupplierRegistered(BaseModel):
    id: int
    token: str
    status: str


class FaqEntry(_In):
    """One question and its answer, as the supplier wrote them."""

    q: Text(max_chars=200, min_chars=1)
    a: Text(max_chars=2000, min_chars=1, multiline=True)


class ProductFactsIn(_In):
    """``PUT /api/v1/products/{id}/faq``: the facts keepers answer buyers with. Replaces the
    FAQ; ``specs`` and ``after_sales_policy`` are replaced when given, kept when absent."""

    faq: list[FaqEntry] = Field(..., max_length=50)
    specs: dict[Text(max_chars=50, min_chars=1), Text(max_chars=500)] | None = Field(
        None, max_length=50, description='e.g. {"净含量": "250g", "产地": "云南"}'
    )
    after_sales_policy: Text(max_chars=2000, multiline=True) | None = None
