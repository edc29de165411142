"""The catalog rules of PRODUCT.md ("Suppliers and products"), in plain Python (no nameko, no
SQLAlchemy). Every number is configuration: ``CatalogRules.from_config(config)`` reads ``RULES:``
of ``catalog/config.yml``; the defaults below are the documented ones.

* Supplier qualification (``qualification_problems``): registered capital of at least
  1,000,000 CNY, general VAT taxpayer, branded goods with an authorisation chain of at most
  3 levels or unbranded goods with traceable purchase records. Every broken rule is named.
* Deposit (``required_deposit_fen``): 10,000 CNY, more in categories configured to need more;
  a qualified supplier is ``pending_deposit`` until paid in full (partial payments accumulate),
  then ``active``.
* Listing (``listing_problems``): a known category, price > 0, stock >= 0, commission not lower
  than the declared open-market (淘宝客) rate, price not higher than the declared price on other
  platforms. Keepers see the exact commission (``commission_fen``) before picking.
* Availability (``is_available``): listed, in stock, supplier active.
* Stock allotments (``grantable``, ``displayed_stock``, ``reclaim_needed``, ``after_reclaim``):
  the catalog grants units to orders' pool in batches, each line up to the stock it has when
  the product is listed and its supplier active; buyers see ``stock + allotted``; before a
  supplier's stock change, delisting or suspension the free pool units come back first.
* Stock holds (``merge_lines``, ``short_line``, ``hold_expires_at``, ``reservation_expired``): a
  reservation takes every line or none, each only from listed stock that covers it at the
  caller's price; held stock goes back on sale ``reservation_grace_seconds`` after
  the buyer's deadline, which the caller gives (orders: its unpaid-order expiry).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeGuard

from shared.errors import rule
from shared.money import apply_bps
from shared.rules import ConfiguredRules

DEFAULT_CATEGORIES = (
    "food_health",
    "beauty_care",
    "baby_toys",
    "home_appliances",
    "apparel_sports",
)

# supplier statuses
PENDING_DEPOSIT = "pending_deposit"
ACTIVE = "active"
SUSPENDED = "suspended"
# product statuses
LISTED = "listed"
DELISTED = "delisted"
# reservation statuses
HELD = "held"
COMMITTED = "committed"
RELEASED = "released"
RETURNED = "returned"  # committed (paid) stock given back: a full refund of unshipped goods
# stock grant statuses (units granted to orders' pool, ``grant_stock``)
GRANTED = "granted"  # out at orders: in flight or in its pool
SETTLED = "settled"  # a reclaim found that orders had applied it
REVOKED = "revoked"  # a reclaim found that orders had not: it discards the late reply
# stock reclaim statuses (orders' ``reclaim_stock``, owed before a stock change)
OWED = "owed"
APPLIED = "applied"


@dataclass(frozen=True)
class CatalogRules(ConfiguredRules):
    """``RULES:`` of ``catalog/config.yml``; the defaults are PRODUCT.md's."""

    min_registered_capital_fen: int = 100_000_000  # 1,000,000 CNY
    require_general_taxpayer: bool = True
    max_brand_authorization_levels: int = 3
    deposit_fen: int = 1_000_000  # 10,000 CNY
    category_deposit_fen: dict[str, int] = field(default_factory=dict)
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    image_max_bytes: int = 5 * 1024 * 1024
    image_max_pixels: int = 25_000_000
    # Held stock is released this long after its buyer's deadline (the hold the caller gave;
    # orders owns the unpaid-order expiry and passes it as ``hold_seconds``).
    reservation_grace_seconds: int = 5 * 60
    # An owed reclaim (orders did not answer) is called again this often, once it is this old.
    reclaim_retry_seconds: float = 10.0
    # For callers that give no hold (``reserve_stock`` without ``hold_seconds``).
    default_hold_seconds: int = 30 * 60


# --- suppliers ------------------------------------------------------------------------------
def qualification_problems(application: dict, r: CatalogRules) -> list[dict]:
    """Every qualification rule the applicant breaks (empty: it qualifies)."""
    problems = []
    capital = application.get("registered_capital_fen", 0)
    if capital < r.min_registered_capital_fen:
        problems.append(
            rule(
                "registered_capital",
                f"registered capital must be at least {r.min_registered_capital_fen} fen "
                f"(got {capital})",
                minimum_fen=r.min_registered_capital_fen,
            )
        )
    if r.require_general_taxpayer and not application.get("general_taxpayer"):
        problems.append(
            rule("general_taxpayer", "the supplier must be a general VAT taxpayer (一般纳税人)")
        )
    levels = application.get("brand_authorization_levels")
    if levels is not None and levels > r.max_brand_authorization_levels:
        problems.append(
            rule(
                "brand_authorization_chain",
                "the brand authorisation chain may have at most "
                f"{r.max_brand_authorization_levels} levels (got {levels})",
                maximum=r.max_brand_authorization_levels,
            )
        )
    if levels is None and not application.get("purchase_records"):
        problems.append(
            rule(
                "goods_provenance",
                "branded goods need a brand authorisation chain (brand_authorization_levels); "
                "unbranded goods need traceable purchase records (purchase_records)",
            )
        )
    unknown = [c for c in application.get("categories") or [] if c not in r.categories]
    if unknown:
        problems.append(
            rule(
                "category_known",
                f"unknown categories: {', '.join(unknown)}",
                known=list(r.categories),
            )
        )
    return problems


def required_deposit_fen(categories: Iterable[str], r: CatalogRules) -> int:
    """The deposit: the default, or more when one of the supplier's categories needs more."""
    return max([r.deposit_fen] + [r.category_deposit_fen.get(c, 0) for c in categories or []])


def after_deposit(
    status: str, paid_fen: int, amount_fen: int, required_fen: int
) -> tuple[str, int]:
    """(new status, new paid total): deposits accumulate; met → active."""
    total = paid_fen + amount_fen
    if status == PENDING_DEPOSIT and total >= required_fen:
        return ACTIVE, total
    return status, total


# --- products -------------------------------------------------------------------------------
def listing_problems(
    p: dict, r: CatalogRules, supplier_deposit_fen: int | None = None
) -> list[dict]:
    """Every listing rule the product breaks (``p`` holds the full product fields)."""
    problems = []
    if p.get("category") not in r.categories:
        problems.append(
            rule(
                "category_known",
                f"unknown category {p.get('category')!r}",
                known=list(r.categories),
            )
        )
    elif supplier_deposit_fen is not None:
        needed = r.category_deposit_fen.get(p["category"], 0)
        if supplier_deposit_fen < needed:
            problems.append(
                rule(
                    "category_deposit",
                    f"category {p['category']} needs a deposit of {needed} fen "
                    f"(paid {supplier_deposit_fen})",
                    required_fen=needed,
                )
            )
    price, stock = p.get("price_fen"), p.get("stock")
    if not _is_int(price) or price <= 0:
        problems.append(rule("price_positive", "price_fen must be a positive integer (fen)"))
    if not _is_int(stock) or stock < 0:
        problems.append(rule("stock_non_negative", "stock must be a non-negative integer"))
    ref = p.get("reference_price_fen")
    if not _is_int(ref) or ref <= 0:
        problems.append(
            rule("reference_price_positive", "reference_price_fen must be a positive integer (fen)")
        )
    elif _is_int(price) and price > ref:
        problems.append(
            rule(
                "price_not_above_reference",
                f"the price ({price} fen) may not be higher than on other platforms ({ref} fen)",
            )
        )
    comm, market = p.get("commission_bps"), p.get("market_commission_bps")
    if _is_int(comm) and _is_int(market) and comm < market:
        problems.append(
            rule(
                "commission_not_below_market",
                f"the commission ({comm} bps) may not be lower than on the open affiliate market "
                f"({market} bps)",
            )
        )
    return problems


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def is_available(status: str, stock: int, supplier_active: bool) -> bool:
    """``stock``: what buyers see (``displayed_stock``)."""
    return status == LISTED and stock > 0 and bool(supplier_active)


def displayed_stock(stock: int, allotted: int | None) -> int:
    """The stock buyers and suppliers see: what the catalog can still give out plus the units
    in orders' pool (for sale there); browse's "in stock" filter is the same sum in SQL."""
    return stock + (allotted or 0)


# --- stock allotments -----------------------------------------------------------------------
def grantable(product: Any, quantity: int) -> int:
    """How many of ``quantity`` units a grant takes from ``product`` (its stock, status and
    supplier_active; None: no such product): up to its stock when it is listed and its
    supplier active, else none. The SQL of ``handlers.stock`` grants the same ``LEAST``."""
    if product is None or not (product.status == LISTED and product.supplier_active):
        return 0
    return max(0, min(quantity, product.stock))


def reclaim_needed(allotted: int, granted_grants: int) -> bool:
    """Orders holds units of the product (in its pool, in flight, or held by unpaid orders):
    a stock change must reclaim the free ones first. Nothing out there: no call at all."""
    return allotted > 0 or granted_grants > 0


def after_reclaim(stock: int, allotted: int, units: int, revoked: int) -> tuple[int, int]:
    """(stock, allotted) once orders gave back ``units`` free pool units and revoked grants of
    ``revoked`` units (granted, never applied): both come back to the catalog's stock."""
    back = units + revoked
    return stock + back, allotted - back


def commission_fen(price_fen: int, commission_bps: int) -> int:
    return apply_bps(price_fen, commission_bps)


SNAPSHOT_FIELDS = (
    "title",
    "category",
    "price_fen",
    "commission_bps",
    "stock",
    "status",
    "available",
    "image_url",
    "image_ref",
    "brand",
    "description",
    "faq",
    "specs",
    "after_sales_policy",
)


def snapshot_changed(before: dict, after: dict) -> bool:
    return any(before.get(k) != after.get(k) for k in SNAPSHOT_FIELDS)


def merge_lines(items: Iterable[dict]) -> list[tuple[int, int]]:
    """Reservation lines summed per product, in product-id order (a fixed lock order, so two
    reservations touching the same products never deadlock)."""
    totals: dict[int, int] = {}
    for item in items:
        totals[item["product_id"]] = totals.get(item["product_id"], 0) + item["quantity"]
    return sorted(totals.items())


def short_line(product: Any, quantity: int, price_fen: int | None) -> tuple[str | None, int]:
    """Whether ``quantity`` of ``product`` (its stock, status, supplier_active and price_fen;
    None: no such product) can be held at ``price_fen`` (None: at any price): (None, stock)
    when it can, else (the reason, what is available). The no-oversell condition the stock
    UPDATE enforces in SQL (``handlers.stock``): listed, supplier active, ``stock >=
    quantity``, the caller's price."""
    if product is None:
        return "not_found", 0
    if not (product.status == LISTED and product.supplier_active):
        return "unavailable", 0
    if product.stock < quantity:
        return "insufficient_stock", product.stock
    if price_fen is not None and product.price_fen != price_fen:
        return "price_changed", product.stock
    return None, product.stock


def hold_expires_at(created_at: datetime, hold_seconds: int | None, r: CatalogRules) -> datetime:
    """When held stock goes back on sale: the buyer's deadline (``hold_seconds`` after the
    hold, ``default_hold_seconds`` when the caller gave none) plus ``reservation_grace_seconds``
    (a payment that lands just at the deadline still finds its stock)."""
    hold = r.default_hold_seconds if hold_seconds is None else hold_seconds
    return created_at + timedelta(seconds=hold + r.reservation_grace_seconds)


def reservation_expired(expires_at: datetime, now: datetime) -> bool:
    """A hold whose ``expires_at`` has come is released by the sweep (the SQL of
    ``handlers.stock.expired_reservation_ids`` is this comparison)."""
    return expires_at <= now


# --- paging ---------------------------------------------------------------------------------
# Browse orders (``GET /products?sort=``): newest first; the highest commission (in fen, the
# figure keepers pick by) first; the most units sold first. Ties fall back to newest first.
SORTS = ("newest", "commission", "sales")
_CURSOR_PREFIX = {"newest": "p1", "commission": "c1", "sales": "s1"}


def sort_problem(sort: str | None) -> dict | None:
    """None when ``sort`` is a known browse order (or absent), else the 422 detail."""
    if sort is None or sort in SORTS:
        return None
    return {"field": "sort", "message": f"unknown sort {sort!r}; known: {', '.join(SORTS)}"}


def sort_key(sort: str, price_fen: int, commission_bps: int, units_sold: int) -> int:
    """The value a product is ordered by under ``sort`` (descending, then id descending); the
    SQL of ``queries.browse`` orders by the same expression (price × bps is monotone in the
    commission in fen, without its rounding)."""
    if sort == "commission":
        return price_fen * commission_bps
    if sort == "sales":
        return units_sold
    return 0


def encode_cursor(last_id: int, sort: str = "newest", key: int = 0) -> str:
    """An opaque keyset cursor: the sort it belongs to, the last row's sort key and id."""
    prefix = _CURSOR_PREFIX[sort]
    body = f"p1:{last_id}" if sort == "newest" else f"{prefix}:{key}:{last_id}"
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_sorted_cursor(cursor: str | None, sort: str = "newest") -> tuple[int, int] | None:
    """``(key, id)`` after which the next page of ``sort`` starts; ValueError when malformed
    or made for another sort."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("malformed cursor") from exc
    parts = raw.split(":")
    if parts[0] != _CURSOR_PREFIX.get(sort) or not all(p.isdigit() for p in parts[1:]):
        raise ValueError("malformed cursor")
    if sort == "newest" and len(parts) == 2:
        return 0, int(parts[1])
    if sort != "newest" and len(parts) == 3:
        return int(parts[1]), int(parts[2])
    raise ValueError("malformed cursor")


def decode_cursor(cursor: str | None) -> int | None:
    """The id after which the next page starts (newest first); ValueError when malformed."""
    found = decode_sorted_cursor(cursor, "newest")
    return None if found is None else found[1]


# --- units sold -----------------------------------------------------------------------------
def units_sold_after(units_sold: int, quantity: int) -> int:
    """Units sold move with committed stock: + when an order's stock is committed, − when
    committed stock is given back (a full refund before shipping); never below zero."""
    return max(0, units_sold + quantity)


# --- gallery --------------------------------------------------------------------------------
MAX_GALLERY_IMAGES = 9


def gallery_problems(count: int, max_images: int = MAX_GALLERY_IMAGES) -> list[dict]:
    """A product shows at most ``max_images`` photos (the first is its cover)."""
    if count > max_images:
        return [
            rule(
                "gallery_size",
                f"a product has at most {max_images} images",
                field="images",
                max_images=max_images,
            )
        ]
    return []
