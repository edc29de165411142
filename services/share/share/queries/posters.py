"""Poster and landing-photo bytes. A poster's key is the hash of everything it draws
(``domain.poster_key``): an unchanged share is served from memory or the ``poster_cache`` table
and answers ``If-None-Match`` with 304; a missing one is rendered by ``render`` and stored by
``handlers.posters.remember``. Drawing itself is ``share.posters`` (PosterRenderer)."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
from dataclasses import dataclass
from typing import Any

from share import domain
from share.domain import POSTER_STYLES
from share.models import PosterCache
from share.posters import CONTENT_TYPE, FontMissing, decode_photo
from share.queries.shares import Remote, facts, qr_url, share
from share.runtime import State
from shared.errors import NotFound, ServiceUnavailable

log = logging.getLogger(__name__)

RENDER_VERSION = 2  # 2: layout boxes, shop number and share code, ?src=qr
PLACEHOLDER = "placeholder"


@dataclass(frozen=True)
class PosterPlan:
    """A poster to draw: its style, what it shows, its photo and its cache key."""

    key: str
    style: str
    drawn: dict
    photo_key: str
    image_ref: str | None

    @property
    def etag(self) -> str:
        return f'"{self.key[:40]}"'


def plan(db: Any, state: State, remote: Remote, share_id: str, style: str, base: str) -> PosterPlan:
    if style not in POSTER_STYLES:
        raise NotFound(
            f"no poster style {style!r}; styles: {', '.join(POSTER_STYLES)}",
            code="poster_style_not_found",
        )
    if not state.font_path:
        raise ServiceUnavailable(
            "posters are disabled: " + state.font_note, code="poster_font_missing"
        )
    found = share(db, state, share_id)
    shown = facts(state, remote, found)
    photo_key, ref = photo_of(state, remote, shown)
    drawn = {
        "title": shown["title"],
        "price_fen": shown["price_fen"],
        "shop_name": shown["shop_name"],
        "reason": shown["reason"],
        "url": qr_url(base, found["code"]),
        "shop_number": shown.get("shop_number") or "",
        "code": domain.display_code(found["code"]),
        "photo": photo_key,
        "font": state.font_path,
        "v": RENDER_VERSION,
    }
    return PosterPlan(domain.poster_key(style, drawn), style, drawn, photo_key, ref)


def not_modified(p: PosterPlan, if_none_match: str | None) -> bool:
    return bool(if_none_match) and p.etag in [t.strip() for t in str(if_none_match).split(",")]


def cached(db: Any, state: State, p: PosterPlan) -> tuple[str, bytes] | None:
    """The poster's bytes from memory, else from the ``poster_cache`` table."""
    hit = state.posters.get(p.key)
    if hit is not None:
        return hit
    with db.read() as session:
        row = session.get(PosterCache, p.key)
        if row is None:
            return None
        hit = (row.content_type, bytes(row.data))
    state.posters.put(p.key, hit)
    return hit


def render(state: State, remote: Remote, p: PosterPlan) -> bytes:
    photo = load_photo(state, remote, p.image_ref) if p.photo_key != PLACEHOLDER else None
    try:
        data = state.renderer.render(p.style, p.drawn, photo, p.photo_key)
    except FontMissing as exc:
        raise ServiceUnavailable(str(exc), code="poster_font_missing") from exc
    state.posters.put(p.key, (CONTENT_TYPE, data))
    return data


def photo_of(state: State, remote: Remote, shown: dict) -> tuple[str, str | None]:
    """(key of the photo, its image ref) — the key is the sha256 of the image bytes."""
    ref = shown.get("image_ref")
    if not ref:
        return PLACEHOLDER, None
    digest = state.image_digest.get(ref)
    if digest is None:
        load_photo(state, remote, ref)
        digest = state.image_digest.get(ref) or PLACEHOLDER
    return digest, ref


def load_photo(state: State, remote: Remote, ref: str | None) -> Any:
    """The decoded catalog image (None: a missing or broken one, drawn as the placeholder)."""
    if not ref:
        return None
    photo = state.photos.get(ref)
    if photo is not None:
        return photo
    try:
        answer = remote.catalog.get_image(ref)
        data = base64.b64decode(answer["data_b64"])
        photo = decode_photo(data)
    except ServiceUnavailable:
        raise  # transient: fail this request rather than remember a placeholder
    except Exception as exc:  # a missing/broken image: draw the placeholder
        log.warning("image %s unusable (%s): poster uses a placeholder", ref, exc)
        state.image_digest.put(ref, PLACEHOLDER)
        return None
    state.image_digest.put(ref, hashlib.sha256(data).hexdigest())
    state.photos.put(ref, photo)
    return photo


def share_image(db: Any, state: State, remote: Remote, share_id: str) -> tuple[str, bytes]:
    """The product photo for the landing page (fitted 750×750 JPEG, or the placeholder)."""
    shown = facts(state, remote, share(db, state, share_id))
    photo_key, ref = photo_of(state, remote, shown)
    hit = state.photo_bytes.get(photo_key)
    if hit is None:
        photo = load_photo(state, remote, ref) if photo_key != PLACEHOLDER else None
        if photo is None and not state.font_path:
            raise NotFound("no image for this share", code="image_not_found")
        img = state.renderer.fitted(photo_key, photo, (750, 750), shown["title"])
        out = io.BytesIO()
        img.save(out, "JPEG", quality=82)
        hit = out.getvalue()
        state.photo_bytes.put(photo_key, hit)
    return CONTENT_TYPE, hit
