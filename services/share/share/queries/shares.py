"""Shares as others see them: looked up by id or code (cached: a share row never changes), the
facts they show (from catalog and shop, cached for ``facts_ttl_seconds`` and dropped early by
their events), the ready copy, what a pasted code resolves to and what the landing page shows.

Remote calls go through ``Remote`` (``shared.rpc.TimedCalls``: they give up before the caller's
deadline does and a silent service is a 503)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import eventlet
from sqlalchemy import select

from share import domain
from share.domain import POSTER_STYLES, display_code, extract_codes, normalise_code
from share.models import Share
from share.runtime import State
from shared.errors import NotFound

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Remote:
    """The catalog and shop services, each call with a deadline (``TimedCalls``)."""

    catalog: Any
    shop: Any


def base_url(config: Mapping[str, Any], given: str | None) -> str:
    """Base of share links: the gateway's public URL, else ``XIAOPU_PUBLIC_URL``."""
    return str(given or config.get("XIAOPU_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/")


def landing_url(base: str, code: str) -> str:
    return f"{base}/s/{code}"


def qr_url(base: str, code: str) -> str:
    """The URL a poster's QR code carries: the landing page marked as a scan (``?src=qr``), so
    stats tell scans from opens of the plain link and from pasted codes."""
    return landing_url(base, code) + "?" + domain.QR_SOURCE_PARAM


def share_dict(row: Share) -> dict:
    return {
        "id": row.id,
        "code": row.code,
        "shop_id": row.shop_id,
        "product_id": row.product_id,
        "member_id": row.member_id,
    }


# --- lookups --------------------------------------------------------------------------------
def share(db: Any, state: State, share_id: str) -> dict:
    hit = state.shares_by_id.get(share_id)
    if hit is not None:
        return hit
    with db.read() as session:
        row = session.get(Share, share_id) if len(share_id) <= 36 else None
        if row is None:
            raise NotFound(f"share {share_id} not found", code="share_not_found")
        found = share_dict(row)
    remember(state, found)
    return found


def share_by_code(db: Any, state: State, code: str) -> dict | None:
    share_id = state.share_id_by_code.get(code)
    if share_id is not None:
        return share(db, state, share_id)
    with db.read() as session:
        row = session.execute(select(Share).where(Share.code == code)).scalar_one_or_none()
        if row is None:
            return None
        found = share_dict(row)
    remember(state, found)
    return found


def remember(state: State, found: dict) -> None:
    state.shares_by_id.put(found["id"], found)
    state.share_id_by_code.put(found["code"], found["id"])


# --- facts ----------------------------------------------------------------------------------
def facts(state: State, remote: Remote, found: dict) -> dict:
    """Everything a share shows, from catalog and shop (the three calls run in parallel)."""
    cached = state.cached_facts(found)
    if cached is not None:
        return cached
    shop_call = eventlet.spawn(remote.shop.get_shop, found["shop_id"])
    product_call = eventlet.spawn(_or_none, remote.catalog.get_product, found["product_id"])
    selection_call = eventlet.spawn(
        _or_none, remote.shop.get_selection, found["shop_id"], found["product_id"]
    )
    shop = shop_call.wait()
    product = product_call.wait()
    selection = selection_call.wait() or {"selected": False, "reason": None, "available": False}
    return state.keep_facts(found, facts_from(found, shop, product, selection))


def _or_none(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except NotFound:
        return None


def facts_from(found: dict, shop: dict, product: dict | None, selection: dict) -> dict:
    available = bool(
        product
        and product.get("available")
        and product.get("status") != "delisted"
        and selection.get("selected")
        and selection.get("available", True)
        and shop.get("status") == "active"
    )
    return {
        "share_id": found["id"],
        "code": found["code"],
        "shop_id": found["shop_id"],
        "product_id": found["product_id"],
        "shop_number": shop.get("shop_number"),
        "shop_name": shop.get("display_name") or shop.get("name") or "",
        "shop_status": shop.get("status"),
        "title": (product or {}).get("title") or "",
        "price_fen": int((product or {}).get("price_fen") or 0),
        "image_ref": (product or {}).get("image_ref"),
        "image_url": (product or {}).get("image_url"),
        "reason": selection.get("reason") or "",
        "available": available,
    }


# --- views ----------------------------------------------------------------------------------
def share_out(state: State, found: dict, shown: dict, base: str) -> dict:
    """``ShareOut``: the links, the ready copy (folded at WeChat's limit) and the posters."""
    body, code_line = domain.build_copy(
        shown["title"], shown["price_fen"], shown["reason"], shown["shop_name"], found["code"]
    )
    post, comment = domain.fold_copy(body, code_line, state.rules.fold_limit)
    return {
        "id": found["id"],
        "code": found["code"],
        "display_code": display_code(found["code"]),
        "url": landing_url(base, found["code"]),
        "qr_url": qr_url(base, found["code"]),
        "copy_text": post,
        "copy_comment": comment,
        "posters": [
            {"style": s, "url": f"{base}/api/v1/shares/{found['id']}/posters/{s}"}
            for s in POSTER_STYLES
        ],
        "shop_id": found["shop_id"],
        "shop_number": shown.get("shop_number"),
        "product_id": found["product_id"],
    }


def get_share(db: Any, state: State, remote: Remote, share_id: str, base: str) -> dict:
    found = share(db, state, share_id)
    shown = facts(state, remote, found)
    out = share_out(state, found, shown, base)
    out.update(
        available=shown["available"],
        title=shown["title"],
        price_fen=shown["price_fen"],
        reason=shown["reason"],
        member_id=found["member_id"],
    )
    return out


def resolve(db: Any, state: State, remote: Remote, text: str, base: str) -> dict:
    """``ResolveOut`` of the first known share code found anywhere in ``text``."""
    for code in extract_codes(text):
        found = share_by_code(db, state, code)
        if found is None:
            continue
        shown = facts(state, remote, found)
        return {
            "share_id": found["id"],
            "shop_id": found["shop_id"],
            "shop_number": shown["shop_number"],
            "product_id": found["product_id"],
            "code": found["code"],
            "url": landing_url(base, found["code"]),
            "available": shown["available"],
        }
    raise NotFound("no share code found in the text", code="share_code_not_found")


def landing(db: Any, state: State, remote: Remote, code: str, base: str) -> dict:
    """What the landing page ``/s/<code>`` shows (the gateway renders and caches it)."""
    norm = normalise_code(code)
    found = share_by_code(db, state, norm) if norm else None
    if found is None:
        raise NotFound("no such share", code="share_not_found")
    shown = facts(state, remote, found)
    image = None
    if shown["image_ref"]:
        image = f"/api/v1/shares/{found['id']}/image"
    elif shown["image_url"]:
        image = shown["image_url"]
    return {
        **shown,
        "display_code": display_code(found["code"]),
        "price": domain.yuan(shown["price_fen"]),
        "image": image,
        "url": landing_url(base, found["code"]),
        "cache_seconds": state.rules.landing_cache_seconds,
    }
