"""The product page a buyer lands on — from a share (``/s/<code>``) or from a shop
(``/shop/<shop_number>/p/<product_id>``) — built from the share's landing facts (or the shop's
public view) plus the catalog's product (description, reference price, after-sales policy).

The landing page is the platform's hot path: the rendered page of a code is kept for the share
service's ``cache_seconds`` (5 s by default, so a delisting shows within seconds), so a cached
hit costs no RPC at all — the same budget as the page it replaces.

With several gateways (and several share instances) a change must not wait for that TTL:
every gateway process drops the pages and catalog products a ``product_*`` / shop event touches
(``forget``, called by the broadcast handlers of ``gateway.invalidation``), and for
``HOLD_SECONDS`` after such a drop it renders the pages of that product or shop without keeping
them, so a page fetched from a share instance that has not yet dropped its own facts (the same
broadcast reaches it a few milliseconds later or earlier) is not kept for the TTL.
"""

from __future__ import annotations

import re
import time
from typing import Any

from gateway.web.render import render, yuan
from shared.errors import NotFound
from shared.lru import LRU

# Where the share landing page lives. The classic page of gateway/routes/share.py served
# /s/<code> until this one replaced it (README of the web package: "the /s/<code> switch").
SHARE_PREFIX = "/s/"
LANDING_PATH = SHARE_PREFIX + "<code>"
CODE_RE = re.compile(r"^[A-Za-z0-9]{4,32}$")
PAGES: LRU[str, tuple[float, dict, bytes]] = LRU(maxsize=10_000)
PRODUCT_SECONDS = 30.0
PRODUCTS: LRU[int, dict] = LRU(maxsize=10_000, ttl=PRODUCT_SECONDS)
# after an invalidation, pages of that product/shop are not kept for this long (see above)
HOLD_SECONDS = 2.0
HELD_PRODUCTS: LRU[int, float] = LRU(maxsize=10_000, ttl=HOLD_SECONDS)
HELD_SHOPS: LRU[int, float] = LRU(maxsize=10_000, ttl=HOLD_SECONDS)
DEFAULT_AFTER_SALES = (
    "由供货商发货并负责售后：签收后售后期内可申请退款，平台担保交易，款项在售后期结束后才结算。"
)


def share_url(code: str) -> str:
    return f"{SHARE_PREFIX}{code}"


def absolute(base: str, url: str | None) -> str | None:
    if not url:
        return None
    return url if url.startswith(("http://", "https://")) else f"{base}{url}"


def catalog_product(gw: Any, product_id: int) -> dict | None:
    """The catalog's product (description, reference price); None when it is gone."""
    found = PRODUCTS.get(product_id)
    if found is None:
        try:
            found = gw.rpc("catalog").get_product(product_id)
        except NotFound:
            found = {}
        PRODUCTS.put(product_id, found)
    return found or None


def forget(product_id: int | None = None, shop_id: int | None = None) -> int:
    """Drop the cached pages (and catalog product) of ``product_id`` and/or ``shop_id`` in this
    process; how many pages. Idempotent: in-process only, safe to run in every gateway."""
    if product_id is not None:
        PRODUCTS.pop(product_id)
        HELD_PRODUCTS.put(product_id, time.monotonic())
    if shop_id is not None:
        HELD_SHOPS.put(shop_id, time.monotonic())
    return PAGES.discard_items_where(lambda _code, entry: touches(entry[1], product_id, shop_id))


def touches(facts: dict, product_id: int | None, shop_id: int | None) -> bool:
    """Whether a page of these landing facts shows ``product_id`` / ``shop_id``."""
    return (product_id is None or int(facts.get("product_id") or 0) == product_id) and (
        shop_id is None or int(facts.get("shop_id") or 0) == shop_id
    )


def held(facts: dict) -> bool:
    """A product or shop changed within ``HOLD_SECONDS``: render, do not keep."""
    product_id, shop_id = facts.get("product_id"), facts.get("shop_id")
    return (product_id is not None and int(product_id) in HELD_PRODUCTS) or (
        shop_id is not None and int(shop_id) in HELD_SHOPS
    )


def page_view(base: str, facts: dict, product: dict | None) -> dict:
    """What the landing template shows (pure: testable without a server)."""
    product = product or {}
    price_fen = int(facts.get("price_fen") or product.get("price_fen") or 0)
    reference = int(product.get("reference_price_fen") or 0)
    description = (product.get("description") or "").strip()
    reason = (facts.get("reason") or "").strip()
    image = absolute(base, facts.get("image") or product.get("image_url"))
    summary = reason or description or facts.get("title") or ""
    return {
        "title": facts.get("title") or product.get("title") or "",
        "price": yuan(price_fen),
        "price_fen": price_fen,
        "original_price": yuan(reference) if reference > price_fen else None,
        "description": description,
        "reason": reason,
        "after_sales": (product.get("after_sales_policy") or "").strip() or DEFAULT_AFTER_SALES,
        "brand": product.get("brand"),
        "image": image,
        "shop_name": facts.get("shop_name") or "",
        "shop_number": str(facts.get("shop_number") or ""),
        "product_id": int(facts["product_id"]),
        "available": bool(facts.get("available")),
        "share_code": facts.get("code"),
        "display_code": facts.get("display_code"),
        "url": facts.get("url") or "",
        "og_description": summary[:120],
    }


def share_page(gw: Any, code: str) -> tuple[dict, bytes] | None:
    """(landing facts, rendered page) of a share code; None when there is no such share."""
    code = code.strip().upper()
    if not CODE_RE.match(code):
        return None
    entry = PAGES.get(code)
    if entry is not None and entry[0] > time.monotonic():
        return entry[1], entry[2]
    try:
        facts = gw.rpc("share").landing(code, public_url=gw.public_url())
    except NotFound:
        return None
    product = catalog_product(gw, int(facts["product_id"]))
    view = page_view(gw.public_url(), facts, product)
    body = render("landing.html", page=view, base=gw.public_url()).encode("utf-8")
    ttl = float(facts.get("cache_seconds") or 0)
    if ttl > 0 and not held(facts):
        PAGES.put(code, (time.monotonic() + ttl, facts, body))
    return facts, body


def shop_product_page(gw: Any, shop_number: str, product_id: int) -> bytes | None:
    """A product as it is shown inside a shop (no share): attributed by the shop number."""
    shop = gw.rpc("shop").public_shop(shop_number, 1000, None)
    picked = [
        p
        for p in shop.get("products", []) + shop.get("unavailable_products", [])
        if int(p["product_id"]) == product_id
    ]
    if not picked:
        return None
    item = picked[0]
    facts = {
        "product_id": product_id,
        "title": item.get("title"),
        "price_fen": item.get("price_fen"),
        "image": item.get("image_url"),
        "reason": item.get("reason"),
        "available": item.get("available"),
        "shop_name": shop.get("display_name"),
        "shop_number": shop.get("shop_number"),
        "url": f"{gw.public_url()}/shop/{shop_number}/p/{product_id}",
    }
    view = page_view(gw.public_url(), facts, catalog_product(gw, product_id))
    return render("landing.html", page=view, base=gw.public_url()).encode("utf-8")
