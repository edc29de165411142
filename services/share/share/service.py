"""Entrypoints of the share service: each one validates with the contract model, opens a unit of
work (or reads), and calls one handler (``share.handlers``) or query (``share.queries``).

RPC: create_share, resolve, landing, record_visits, get_share, get_poster, get_share_image,
last_visit, shop_stats (+ health/set_clock/echo). Events in: catalog product_* (drop cached
facts), shop selection_changed/shop_activated/shop_suspended/shop_reinstated (same), orders
order_paid (stats read model).
Event out: share_visits_recorded (one per flushed batch of visits). See README.md.
"""

from __future__ import annotations

import base64
import logging

from nameko.rpc import RpcProxy
from nameko.timer import timer
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from share import domain
from share.handlers import facts, posters, shares, stats
from share.handlers import visits as visit_handlers
from share.models import Base
from share.posters import CONTENT_TYPE, font_status
from share.queries import posters as poster_queries
from share.queries import shares as share_queries
from share.queries import visits as visit_queries
from share.queries.shares import Remote
from share.runtime import ShareRuntime
from shared.broadcast import broadcast_handler
from shared.contracts.events import (
    OrderPaid,
    ProductSnapshot,
    SelectionChanged,
    ShopChanged,
    ShopSuspension,
)
from shared.contracts.share import CreateShare, StatsQuery, VisitIn
from shared.db import Database
from shared.errors import Conflict, ValidationFailed
from shared.events import batch_event_handler, event_handler
from shared.platform import PlatformRpc
from shared.rpc import TimedCalls, rpc
from shared.validation import an_id, validated

log = logging.getLogger(__name__)

VISIT_FLUSH_SECONDS = 0.5
CODE_ATTEMPTS = 5  # a 60-bit code collides practically never; retry if it does


class ShareService(PlatformRpc):
    name = "share"
    db = Database(Base.metadata)
    runtime = ShareRuntime()
    catalog = RpcProxy("catalog")
    shop = RpcProxy("shop")

    def _remote(self) -> Remote:
        """catalog and shop, each call bounded by this worker's deadline (``shared.rpc``).
        The calls may run in parallel green threads, so they share one budget function rather
        than rewriting the worker's context (``TimedCalls`` without a worker context)."""
        budget = self.deadline.budget
        return Remote(
            catalog=TimedCalls(self.catalog, "catalog", budget),
            shop=TimedCalls(self.shop, "shop", budget),
        )

    def _base(self, public_url: str | None = None) -> str:
        return share_queries.base_url(self.config, public_url)

    @rpc
    def health(self) -> dict:
        answer = super().health()
        answer["poster_font"] = self.runtime.font_path or f"MISSING: {self.runtime.font_note}"
        # a font problem degrades posters, not the platform: health stays ok (issue 18)
        answer["posters"] = font_status(self.runtime.font_path, self.runtime.font_note)
        return answer

    # -- shares -----------------------------------------------------------------------------
    @rpc
    def create_share(self, member_id, shop_id, product_id, fresh=False, public_url=None) -> dict:
        cmd = validated(
            CreateShare,
            {"member_id": member_id, "shop_id": shop_id, "product_id": product_id, "fresh": fresh},
        )
        checked = shares.check_shareable(self._remote(), cmd)
        for _ in range(CODE_ATTEMPTS):
            try:
                with self.db.unit_of_work() as uow:
                    found = uow.once(lambda: shares.share_for(uow, cmd))
                break
            except IntegrityError:
                continue
        else:
            raise Conflict("could not allocate a share code, try again")
        shown = share_queries.facts_from(found, checked.shop, checked.product, checked.selection)
        self.runtime.keep_facts(found, shown)
        return share_queries.share_out(self.runtime, found, shown, self._base(public_url))

    @rpc
    def get_share(self, share_id, public_url=None) -> dict:
        return share_queries.get_share(
            self.db, self.runtime, self._remote(), str(share_id), self._base(public_url)
        )

    @rpc
    def resolve(self, text, visitor_id=None, kind="resolve", client=None) -> dict:
        """The share behind a code found anywhere in ``text``; counts a visit of ``kind``
        (``kind=None``: look up only, e.g. orders attributing a checkout)."""
        found = share_queries.resolve(
            self.db, self.runtime, self._remote(), str(text or ""), self._base()
        )
        if kind:
            visit = {
                "share_id": found["share_id"],
                "shop_id": found["shop_id"],
                "product_id": found["product_id"],
                "visitor_id": visitor_id,
                "client": client,
                "kind": kind if kind in ("landing", "scan") else "resolve",
            }
            visit_handlers.buffer(self.runtime, [visit])
        return found

    @rpc
    def landing(self, code, public_url=None) -> dict:
        """What the landing page shows (the gateway counts the visit via record_visits)."""
        return share_queries.landing(
            self.db, self.runtime, self._remote(), str(code or ""), self._base(public_url)
        )

    # -- posters ----------------------------------------------------------------------------
    @rpc
    def get_poster(self, share_id, style, public_url=None, if_none_match=None) -> dict:
        remote = self._remote()
        plan = poster_queries.plan(
            self.db, self.runtime, remote, str(share_id), str(style), self._base(public_url)
        )
        answer = {"etag": plan.etag, "key": plan.key}
        if poster_queries.not_modified(plan, if_none_match):
            return {"etag": plan.etag, "content_type": CONTENT_TYPE, "not_modified": True}
        hit = poster_queries.cached(self.db, self.runtime, plan)
        if hit is None:
            data = poster_queries.render(self.runtime, remote, plan)
            with self.db.unit_of_work() as uow:
                posters.remember(uow, plan.key, plan.style, data)
            hit = (CONTENT_TYPE, data)
        content_type, data = hit
        return {
            **answer,
            "content_type": content_type,
            "data_b64": base64.b64encode(data).decode("ascii"),
        }

    @rpc
    def get_share_image(self, share_id) -> dict:
        content_type, data = poster_queries.share_image(
            self.db, self.runtime, self._remote(), str(share_id)
        )
        return {"content_type": content_type, "data_b64": base64.b64encode(data).decode("ascii")}

    # -- visits and attribution -------------------------------------------------------------
    @rpc
    def record_visits(self, visits) -> dict:
        """A batch of visits from the gateway; an invalid entry is skipped, not the batch."""
        batch, rejected = [], 0
        for visit in visits or []:
            try:
                batch.append(VisitIn.model_validate(visit).model_dump())
            except ValidationError:
                rejected += 1
        if rejected:
            log.warning("record_visits: skipped %d invalid visits", rejected)
        return {**visit_handlers.buffer(self.runtime, batch), "rejected": rejected}

    @timer(interval=VISIT_FLUSH_SECONDS)
    def flush_visits(self) -> dict:
        batch = self.runtime.take_visits()
        counted, throttled = visit_handlers.admit(self.runtime, batch)
        if not counted:
            self.runtime.flushed()
            return {"counted": 0, "throttled": throttled}
        try:
            with self.db.unit_of_work() as uow:
                offset = self.runtime.rules.stats_utc_offset_hours
                written = visit_handlers.record(uow, offset, counted)
        except Exception:
            log.exception("could not write %d visits; they stay buffered", len(counted))
            self.runtime.return_visits(counted)
            return {"counted": 0, "throttled": throttled}
        self.runtime.flushed()
        return {"counted": written, "throttled": throttled}

    @rpc
    def last_visit(self, visitor_id, since_iso=None) -> dict | None:
        """The last share ``visitor_id`` opened since ``since_iso``, the start of the caller's
        attribution window (orders owns the window): required, 422 without it."""
        try:
            since = domain.visit_window_start(since_iso)
        except (TypeError, ValueError) as exc:
            raise ValidationFailed(
                "since_iso must be an ISO-8601 instant: the start of the attribution window",
                details=[{"field": "since_iso", "message": str(exc)}],
            ) from exc
        if not visitor_id:
            return None
        return visit_queries.last_visit(self.db, self.runtime, str(visitor_id), since)

    @rpc
    def shop_stats(self, shop_id, since=None, until=None) -> dict:
        query = validated(StatsQuery, {"since": since, "until": until})
        with self.db.read() as session:
            return visit_queries.shop_stats(
                session,
                self.runtime.rules.stats_utc_offset_hours,
                an_id(shop_id, "shop"),
                query.since,
                query.until,
            )

    # -- events -----------------------------------------------------------------------------
    @batch_event_handler("orders", "order_paid")
    def on_order_paid(self, events: list[dict]):
        """The stats read model, a batch of ``order_paid`` per transaction (shared.events)."""
        paid = [(event, OrderPaid.model_validate(event["data"])) for event in events]
        with self.db.unit_of_work() as uow:
            stats.orders_paid(uow, self.runtime.rules.stats_utc_offset_hours, paid)

    @event_handler("catalog", "product_changed")
    def on_product_changed(self, event):
        self._forget(event, "on_product_changed", product_id=self._product_of(event))

    @event_handler("catalog", "product_delisted")
    def on_product_delisted(self, event):
        self._forget(event, "on_product_delisted", product_id=self._product_of(event))

    @event_handler("catalog", "product_listed")
    def on_product_listed(self, event):
        self._forget(event, "on_product_listed", product_id=self._product_of(event))

    @event_handler("shop", "selection_changed")
    def on_selection_changed(self, event):
        data = SelectionChanged.model_validate(event["data"])
        self._forget(
            event, "on_selection_changed", product_id=data.product_id, shop_id=data.shop_id
        )

    @event_handler("shop", "shop_activated")
    def on_shop_activated(self, event):
        shop_id = ShopChanged.model_validate(event["data"]).shop_id
        self._forget(event, "on_shop_activated", shop_id=shop_id)

    @event_handler("shop", "shop_suspended")
    def on_shop_suspended(self, event):
        shop_id = ShopSuspension.model_validate(event["data"]).shop_id
        self._forget(event, "on_shop_suspended", shop_id=shop_id)

    @event_handler("shop", "shop_reinstated")
    def on_shop_reinstated(self, event):
        shop_id = ShopSuspension.model_validate(event["data"]).shop_id
        self._forget(event, "on_shop_reinstated", shop_id=shop_id)

    @staticmethod
    def _product_of(event: dict) -> int:
        return ProductSnapshot.model_validate(event["data"]).product_id

    def _forget(self, event, handler, product_id=None, shop_id=None) -> None:
        with self.db.unit_of_work() as uow:
            facts.forget(uow, self.runtime, event, handler, product_id=product_id, shop_id=shop_id)

    # -- the same events, in EVERY instance: drop this process' cached facts ------------------
    # The handlers above are SERVICE_POOL (one instance of share gets each event); these are
    # BROADCAST (shared/broadcast.py): no database work, idempotent, so the other instances
    # never show a stale price until the TTL.
    @broadcast_handler("catalog", "product_changed")
    def drop_facts_on_product_changed(self, event):
        facts.drop(self.runtime, product_id=self._product_of(event))

    @broadcast_handler("catalog", "product_delisted")
    def drop_facts_on_product_delisted(self, event):
        facts.drop(self.runtime, product_id=self._product_of(event))

    @broadcast_handler("catalog", "product_listed")
    def drop_facts_on_product_listed(self, event):
        facts.drop(self.runtime, product_id=self._product_of(event))

    @broadcast_handler("shop", "selection_changed")
    def drop_facts_on_selection_changed(self, event):
        data = SelectionChanged.model_validate(event["data"])
        facts.drop(self.runtime, product_id=data.product_id, shop_id=data.shop_id)

    @broadcast_handler("shop", "shop_activated")
    def drop_facts_on_shop_activated(self, event):
        facts.drop(self.runtime, shop_id=ShopChanged.model_validate(event["data"]).shop_id)

    @broadcast_handler("shop", "shop_suspended")
    def drop_facts_on_shop_suspended(self, event):
        facts.drop(self.runtime, shop_id=ShopSuspension.model_validate(event["data"]).shop_id)

    @broadcast_handler("shop", "shop_reinstated")
    def drop_facts_on_shop_reinstated(self, event):
        facts.drop(self.runtime, shop_id=ShopSuspension.model_validate(event["data"]).shop_id)
