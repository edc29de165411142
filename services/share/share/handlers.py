"""What the share service's entrypoints do (kept out of service.py so entrypoints stay short)."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
from datetime import timedelta

import eventlet
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from share import domain
from share.domain import POSTER_STYLES, display_code, extract_codes, normalise_code
from share.models import PaidOrder, PosterCache, Share, Visit
from share.posters import CONTENT_TYPE, FontMissing, decode_photo
from shared import clock
from shared.contracts.events import ShareVisit
from shared.errors import Conflict, Forbidden, NotFound, RuleViolation, ServiceUnavailable, rule
from shared.ids import new_id

log = logging.getLogger(__name__)

RENDER_VERSION = 1
EVENT_CHUNK = 500
RPC_TIMEOUT = 10.0  # a silent shop/catalog must not pin a worker forever


def _deadline(service: str):
    return eventlet.Timeout(
        RPC_TIMEOUT,
        ServiceUnavailable(
            f"the {service} service did not answer within {RPC_TIMEOUT:g}s",
            details={"service": service},
        ),
    )


def _share_dict(share: Share) -> dict:
    return {
        "id": share.id,
        "code": share.code,
        "shop_id": share.shop_id,
        "product_id": share.product_id,
        "member_id": share.member_id,
    }


class Handlers:
    def __init__(self, db, state, catalog, shop, config):
        self.db = db
        self.state = state
        self.rules = state.rules
        self.catalog = catalog
        self.shop = shop
        self.config = config

    def public_url(self, given: str | None) -> str:
        base = given or self.config.get("XIAOPU_PUBLIC_URL") or "http://127.0.0.1:8000"
        return str(base).rstrip("/")

    def landing_url(self, code: str, public_url: str | None) -> str:
        return f"{self.public_url(public_url)}/s/{code}"

    # -- lookups (cached: a share row never changes) ----------------------------------------
    def share(self, share_id: str) -> dict:
        hit = self.state.shares_by_id.get(share_id)
        if hit is not None:
            return hit
        with self.db.read() as session:
            row = session.get(Share, share_id) if len(share_id) <= 36 else None
            if row is None:
                raise NotFound(f"share {share_id} not found", code="share_not_found")
            found = _share_dict(row)
        self.state.share_id_by_code.put(found["code"], found["id"])
        return self.state.shares_by_id.put(share_id, found)

    def share_by_code(self, code: str) -> dict | None:
        share_id = self.state.share_id_by_code.get(code)
        if share_id is not None:
            return self.share(share_id)
        with self.db.read() as session:
            row = session.execute(select(Share).where(Share.code == code)).scalar_one_or_none()
            if row is None:
                return None
            found = _share_dict(row)
        self.state.shares_by_id.put(found["id"], found)
        self.state.share_id_by_code.put(code, found["id"])
        return found

    def facts(self, share: dict) -> dict:
        """Everything a share shows, from catalog and shop (cached; events and a TTL refresh)."""
        cached = self.state.cached_facts(share["id"])
        if cached is not None:
            return cached
        with _deadline("catalog/shop"):  # the three calls run in parallel
            product_call = self.catalog.get_product.call_async(share["product_id"])
            shop_call = self.shop.get_shop.call_async(share["shop_id"])
            selection_call = self.shop.get_selection.call_async(
                share["shop_id"], share["product_id"]
            )
            shop = shop_call.result()
            try:
                product = product_call.result()
            except NotFound:
                product = None
            try:
                selection = selection_call.result()
            except NotFound:
                selection = {"selected": False, "reason": None, "available": False}
        return self.state.keep_facts(share["id"], self._facts_from(share, shop, product, selection))

    @staticmethod
    def _facts_from(share: dict, shop: dict, product: dict | None, selection: dict) -> dict:
        available = bool(
            product
            and product.get("available")
            and product.get("status") != "delisted"
            and selection.get("selected")
            and selection.get("available", True)
            and shop.get("status") == "active"
        )
        return {
            "share_id": share["id"],
            "code": share["code"],
            "shop_id": share["shop_id"],
            "product_id": share["product_id"],
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

    # -- create -----------------------------------------------------------------------------
    def create_share(self, cmd, public_url: str | None) -> dict:
        with _deadline("shop"):
            shop = self.shop.get_shop(cmd.shop_id)
        if int(shop["member_id"]) != cmd.member_id:
            raise Forbidden("only the shop's keeper may share its products", code="not_shop_owner")
        if shop.get("status") != "active":
            raise Conflict(
                "the shop is not active yet: it cannot share or sell",
                code="shop_not_active",
                details={"status": shop.get("status")},
            )
        try:
            with _deadline("shop"):
                selection = self.shop.get_selection(cmd.shop_id, cmd.product_id)
        except NotFound:
            selection = {"selected": False}
        if not selection.get("selected"):
            raise RuleViolation(
                "the shop has not selected this product",
                details=[rule("product_selected", "a shop shares only products it has selected")],
            )
        try:
            with _deadline("catalog"):
                product = self.catalog.get_product(cmd.product_id)
        except NotFound:
            raise RuleViolation(
                "no such product", details=[rule("product_exists", "the product does not exist")]
            )
        if not product.get("available") or selection.get("available") is False:
            raise Conflict(
                "the product is not available (delisted or out of stock)",
                code="product_unavailable",
            )
        share = None
        if not cmd.fresh:
            share = self._latest_share(cmd.shop_id, cmd.product_id)
        if share is None:
            share = self._insert_share(cmd)
        facts = self.state.keep_facts(
            share["id"], self._facts_from(share, shop, product, selection)
        )
        return self._share_out(share, facts, public_url)

    def _latest_share(self, shop_id: int, product_id: int) -> dict | None:
        with self.db.read() as session:
            row = session.execute(
                select(Share)
                .where(Share.shop_id == shop_id, Share.product_id == product_id)
                .order_by(Share.created_at.desc(), Share.id)
                .limit(1)
            ).scalar_one_or_none()
            return _share_dict(row) if row else None

    def _insert_share(self, cmd) -> dict:
        for _ in range(5):  # a 60-bit code collides practically never; retry if it does
            try:
                with self.db.unit_of_work() as uow:
                    row = Share(
                        id=new_id(),
                        code=domain.new_code(),
                        shop_id=cmd.shop_id,
                        product_id=cmd.product_id,
                        member_id=cmd.member_id,
                        created_at=clock.now(),
                    )
                    uow.session.add(row)
                    uow.session.flush()
                    created = _share_dict(row)
                return created
            except IntegrityError:
                continue
        raise Conflict("could not allocate a share code, try again")

    def _share_out(self, share: dict, facts: dict, public_url: str | None) -> dict:
        base = self.public_url(public_url)
        body, code_line = domain.build_copy(
            facts["title"], facts["price_fen"], facts["reason"], facts["shop_name"], share["code"]
        )
        post, comment = domain.fold_copy(body, code_line, self.rules.fold_limit)
        return {
            "id": share["id"],
            "code": share["code"],
            "display_code": display_code(share["code"]),
            "url": self.landing_url(share["code"], public_url),
            "copy_text": post,
            "copy_comment": comment,
            "posters": [
                {"style": s, "url": f"{base}/api/v1/shares/{share['id']}/posters/{s}"}
                for s in POSTER_STYLES
            ],
            "shop_id": share["shop_id"],
            "shop_number": facts.get("shop_number"),
            "product_id": share["product_id"],
        }

    def get_share(self, share_id: str, public_url: str | None) -> dict:
        share = self.share(share_id)
        facts = self.facts(share)
        out = self._share_out(share, facts, public_url)
        out.update(
            available=facts["available"],
            title=facts["title"],
            price_fen=facts["price_fen"],
            reason=facts["reason"],
            member_id=share["member_id"],
        )
        return out

    # -- resolve / landing ------------------------------------------------------------------
    def resolve(self, text: str, visitor_id, kind, client) -> dict:
        for code in extract_codes(text):
            share = self.share_by_code(code)
            if share is None:
                continue
            facts = self.facts(share)
            if kind:
                self.buffer_visits(
                    [
                        {
                            "share_id": share["id"],
                            "shop_id": share["shop_id"],
                            "product_id": share["product_id"],
                            "visitor_id": visitor_id,
                            "client": client,
                            "kind": kind if kind in ("landing", "scan") else "resolve",
                            "age_ms": 0,
                        }
                    ]
                )
            return {
                "share_id": share["id"],
                "shop_id": share["shop_id"],
                "shop_number": facts["shop_number"],
                "product_id": share["product_id"],
                "code": share["code"],
                "url": self.landing_url(share["code"], None),
                "available": facts["available"],
            }
        raise NotFound("no share code found in the text", code="share_code_not_found")

    def landing(self, code: str, public_url: str | None) -> dict:
        norm = normalise_code(code)
        share = self.share_by_code(norm) if norm else None
        if share is None:
            raise NotFound("no such share", code="share_not_found")
        facts = self.facts(share)
        image = None
        if facts["image_ref"]:
            image = f"/api/v1/shares/{share['id']}/image"
        elif facts["image_url"]:
            image = facts["image_url"]
        return {
            **facts,
            "display_code": display_code(share["code"]),
            "price": domain.yuan(facts["price_fen"]),
            "image": image,
            "url": self.landing_url(share["code"], public_url),
            "cache_seconds": self.rules.landing_cache_seconds,
        }

    # -- posters ----------------------------------------------------------------------------
    def _photo(self, facts: dict) -> tuple[str, object]:
        """(key of the photo, loader) — the key is the sha256 of the image bytes."""
        ref = facts.get("image_ref")
        if not ref:
            return "placeholder", None
        digest = self.state.image_digest.get(ref)
        if digest is None:
            self._load_photo(ref)
            digest = self.state.image_digest.get(ref) or "placeholder"
        return digest, ref

    def _load_photo(self, ref: str):
        photo = self.state.photos.get(ref)
        if photo is not None:
            return photo
        try:
            with _deadline("catalog"):
                answer = self.catalog.get_image(ref)
            data = base64.b64decode(answer["data_b64"])
            photo = decode_photo(data)
        except ServiceUnavailable:
            raise  # transient: fail this request rather than remember a placeholder
        except Exception as exc:  # a missing/broken image: draw the placeholder
            log.warning("image %s unusable (%s): poster uses a placeholder", ref, exc)
            self.state.image_digest.put(ref, "placeholder")
            return None
        self.state.image_digest.put(ref, hashlib.sha256(data).hexdigest())
        return self.state.photos.put(ref, photo)

    def poster(self, share_id: str, style: str, public_url, if_none_match) -> dict:
        if style not in POSTER_STYLES:
            raise NotFound(
                f"no poster style {style!r}; styles: {', '.join(POSTER_STYLES)}",
                code="poster_style_not_found",
            )
        if not self.state.font_path:
            raise ServiceUnavailable(
                "posters are disabled: " + self.state.font_note, code="poster_font_missing"
            )
        share = self.share(share_id)
        facts = self.facts(share)
        photo_key, ref = self._photo(facts)
        drawn = {
            "title": facts["title"],
            "price_fen": facts["price_fen"],
            "shop_name": facts["shop_name"],
            "reason": facts["reason"],
            "url": self.landing_url(share["code"], public_url),
            "photo": photo_key,
            "font": self.state.font_path,
            "v": RENDER_VERSION,
        }
        key = domain.poster_key(style, drawn)
        etag = f'"{key[:40]}"'
        if if_none_match and etag in [t.strip() for t in str(if_none_match).split(",")]:
            return {"etag": etag, "content_type": CONTENT_TYPE, "not_modified": True}
        content_type, data = self.cached_poster(key, style, drawn, ref, photo_key)
        return {"etag": etag, "content_type": content_type, "data": data, "key": key}

    def cached_poster(self, key, style, drawn, ref, photo_key) -> tuple[str, bytes]:
        hit = self.state.posters.get(key)
        if hit is not None:
            return hit
        with self.db.read() as session:
            row = session.get(PosterCache, key)
            if row is not None:
                return self.state.posters.put(key, (row.content_type, bytes(row.data)))
        photo = self._load_photo(ref) if ref and photo_key != "placeholder" else None
        try:
            data = self.state.renderer.render(style, drawn, photo, photo_key)
        except FontMissing as exc:
            raise ServiceUnavailable(str(exc), code="poster_font_missing")
        try:
            with self.db.unit_of_work() as uow:
                uow.session.add(
                    PosterCache(
                        key=key,
                        style=style,
                        content_type=CONTENT_TYPE,
                        data=data,
                        created_at=clock.now(),
                    )
                )
        except IntegrityError:  # rendered concurrently by another worker: same bytes
            pass
        return self.state.posters.put(key, (CONTENT_TYPE, data))

    def share_image(self, share_id: str) -> tuple[str, bytes]:
        """The product photo for the landing page (fitted 750×750 JPEG, or the placeholder)."""
        share = self.share(share_id)
        facts = self.facts(share)
        photo_key, ref = self._photo(facts)
        hit = self.state.photo_bytes.get(photo_key)
        if hit is None:
            photo = self._load_photo(ref) if ref and photo_key != "placeholder" else None
            if photo is None and not self.state.font_path:
                raise NotFound("no image for this share", code="image_not_found")
            img = self.state.renderer.fitted(photo_key, photo, (750, 750), facts["title"])
            out = io.BytesIO()
            img.save(out, "JPEG", quality=82)
            hit = self.state.photo_bytes.put(photo_key, out.getvalue())
        return CONTENT_TYPE, hit

    # -- visits -----------------------------------------------------------------------------
    def buffer_visits(self, batch: list[dict]) -> dict:
        now = clock.now()
        for visit in batch:
            visit["at"] = now - timedelta(milliseconds=visit.pop("age_ms", 0) or 0)
        self.state.buffer_visits(batch)
        return {"buffered": len(batch)}

    def flush_visits(self) -> dict:
        batch = self.state.take_visits()
        if not batch:
            return {"counted": 0, "throttled": 0}
        now = clock.now()
        for visit in batch:
            if not isinstance(visit.get("at"), type(now)):
                visit["at"] = now
        fresh = [v for v in batch if not v.get("admitted")]
        again = [v for v in batch if v.get("admitted")]
        counted, throttled = domain.admit_visits(
            fresh, self.state.limits, epoch=lambda v: v["at"].timestamp()
        )
        for visit in counted:
            visit["admitted"] = True
        counted = again + counted
        if not counted:
            return {"counted": 0, "throttled": throttled}
        try:
            self._write_visits(counted)
        except Exception:
            log.exception("could not write %d visits; they stay buffered", len(counted))
            self.state.return_visits(counted)
            return {"counted": 0, "throttled": throttled}
        return {"counted": len(counted), "throttled": throttled}

    def _write_visits(self, visits: list[dict]) -> None:
        offset = self.rules.stats_utc_offset_hours
        rows = [
            {
                "share_id": v["share_id"],
                "shop_id": v["shop_id"],
                "product_id": v["product_id"],
                "visitor_id": v.get("visitor_id"),
                "kind": v["kind"],
                "at": v["at"],
                "day": domain.stats_day(v["at"], offset),
            }
            for v in visits
        ]
        with self.db.unit_of_work() as uow:
            uow.session.execute(insert(Visit), rows)
            for start in range(0, len(rows), EVENT_CHUNK):
                chunk = rows[start : start + EVENT_CHUNK]
                uow.emit(
                    "share_visits_recorded",
                    {
                        "visits": [
                            ShareVisit(
                                share_id=r["share_id"],
                                shop_id=r["shop_id"],
                                product_id=r["product_id"],
                                visitor_id=r["visitor_id"],
                                kind=r["kind"],
                                at=clock.iso(r["at"]),
                            ).model_dump()
                            for r in chunk
                        ]
                    },
                )

    def last_visit(self, visitor_id, since_iso) -> dict | None:
        """The most recent share this visitor opened since ``since_iso`` (last-click
        attribution); visits still in the buffer count too."""
        if not visitor_id:
            return None
        since = (
            clock.parse(since_iso)
            if since_iso
            else clock.now() - timedelta(days=self.rules.attribution_window_days)
        )
        best = None
        for visit in self.state.pending_visits():
            at = visit.get("at")
            if visit.get("visitor_id") == visitor_id and at is not None and at >= since:
                if best is None or at >= best[1]:
                    best = (visit["share_id"], at, visit["kind"])
        with self.db.read() as session:
            row = session.execute(
                select(Visit)
                .where(Visit.visitor_id == str(visitor_id), Visit.at >= since)
                .order_by(Visit.at.desc(), Visit.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            if row is not None and (best is None or clock.as_utc(row.at) > best[1]):
                best = (row.share_id, clock.as_utc(row.at), row.kind)
        if best is None:
            return None
        share = self.share(best[0])
        return {
            "share_id": share["id"],
            "shop_id": share["shop_id"],
            "product_id": share["product_id"],
            "code": share["code"],
            "visited_at": clock.iso(best[1]),
            "kind": best[2],
        }

    # -- stats ------------------------------------------------------------------------------
    def shop_stats(self, shop_id: int, since: str | None, until: str | None) -> dict:
        with self.db.read() as session:
            vq = (
                select(
                    Visit.day, Visit.share_id, func.count(), func.count(Visit.visitor_id.distinct())
                )
                .where(Visit.shop_id == shop_id)
                .group_by(Visit.day, Visit.share_id)
            )
            oq = (
                select(
                    PaidOrder.day, PaidOrder.share_id, func.count(), func.sum(PaidOrder.paid_fen)
                )
                .where(PaidOrder.shop_id == shop_id)
                .group_by(PaidOrder.day, PaidOrder.share_id)
            )
            if since:
                vq, oq = vq.where(Visit.day >= since), oq.where(PaidOrder.day >= since)
            if until:
                vq, oq = vq.where(Visit.day <= until), oq.where(PaidOrder.day <= until)
            visit_rows = session.execute(vq).all()
            order_rows = session.execute(oq).all()
            codes = {
                sid: (code, pid)
                for sid, code, pid in session.execute(
                    select(Share.id, Share.code, Share.product_id).where(Share.shop_id == shop_id)
                )
            }
        stats = domain.assemble_stats(shop_id, visit_rows, order_rows, codes)
        stats["day_utc_offset_hours"] = self.rules.stats_utc_offset_hours
        return stats

    # -- events -----------------------------------------------------------------------------
    def order_paid(self, event: dict, data) -> None:
        with self.db.unit_of_work() as uow:
            if not uow.claim(event, "on_order_paid"):
                return
            if data.shop_id is None or uow.session.get(PaidOrder, data.order_id) is not None:
                return
            paid_at = clock.parse(data.paid_at)
            uow.session.add(
                PaidOrder(
                    order_id=data.order_id,
                    shop_id=data.shop_id,
                    share_id=data.share_id,
                    paid_fen=data.paid_fen,
                    paid_at=paid_at,
                    day=domain.stats_day(paid_at, self.rules.stats_utc_offset_hours),
                )
            )

    def forget(self, event: dict, handler: str, product_id=None, shop_id=None) -> None:
        """Drop cached facts (naturally idempotent; claimed anyway like every handler)."""
        with self.db.unit_of_work() as uow:
            uow.claim(event, handler)
        self.state.forget_facts(product_id=product_id, shop_id=shop_id)
