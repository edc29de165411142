"""Entrypoints of the share service: each one validates, opens a unit of work, applies a rule.

RPC: create_share, resolve, landing, record_visits, get_share, get_poster, get_share_image,
last_visit, shop_stats (+ health/set_clock/echo). Events in: catalog product_* (drop cached
facts), shop selection_changed/shop_activated (same), orders order_paid (stats read model).
Event out: share_visits_recorded (one per flushed batch of visits).
"""

from __future__ import annotations

import base64
import logging

from nameko.rpc import RpcProxy, rpc
from nameko.timer import timer
from pydantic import ValidationError

from share import handlers
from share.models import Base
from share.runtime import ShareRuntime
from shared.contracts.events import OrderPaid, ProductSnapshot, SelectionChanged, ShopChanged
from shared.contracts.share import CreateShare, VisitIn
from shared.db import Database
from shared.errors import ValidationFailed
from shared.events import event_handler
from shared.platform import PlatformRpc

log = logging.getLogger(__name__)

VISIT_FLUSH_SECONDS = 0.5


def _invalid(exc: ValidationError) -> ValidationFailed:
    return ValidationFailed(
        "invalid share request",
        details=[
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ],
    )


class ShareService(PlatformRpc):
    name = "share"
    db = Database(Base.metadata)
    runtime = ShareRuntime()
    catalog = RpcProxy("catalog")
    shop = RpcProxy("shop")

    def _h(self) -> handlers.Handlers:
        return handlers.Handlers(self.db, self.runtime, self.catalog, self.shop, self.config)

    @rpc
    def health(self) -> dict:
        answer = super().health()
        answer["poster_font"] = self.runtime.font_path or f"MISSING: {self.runtime.font_note}"
        if not self.runtime.font_path:
            answer["status"] = "degraded"
        return answer

    # -- shares -----------------------------------------------------------------------------
    @rpc
    def create_share(self, member_id, shop_id, product_id, fresh=False, public_url=None) -> dict:
        try:
            cmd = CreateShare(
                member_id=member_id, shop_id=shop_id, product_id=product_id, fresh=fresh
            )
        except ValidationError as exc:
            raise _invalid(exc)
        return self._h().create_share(cmd, public_url)

    @rpc
    def get_share(self, share_id, public_url=None) -> dict:
        return self._h().get_share(str(share_id), public_url)

    @rpc
    def resolve(self, text, visitor_id=None, kind="resolve", client=None) -> dict:
        """The share behind a code found anywhere in ``text``; counts a visit of ``kind``
        (``kind=None``: look up only, e.g. orders attributing a checkout)."""
        return self._h().resolve(str(text or ""), visitor_id, kind, client)

    @rpc
    def landing(self, code, public_url=None) -> dict:
        """What the landing page shows (the gateway counts the visit via record_visits)."""
        return self._h().landing(str(code or ""), public_url)

    # -- posters ----------------------------------------------------------------------------
    @rpc
    def get_poster(self, share_id, style, public_url=None, if_none_match=None) -> dict:
        poster = self._h().poster(str(share_id), str(style), public_url, if_none_match)
        if poster.get("data") is not None:
            poster["data_b64"] = base64.b64encode(poster.pop("data")).decode("ascii")
        return poster

    @rpc
    def get_share_image(self, share_id) -> dict:
        content_type, data = self._h().share_image(str(share_id))
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
        return {**self._h().buffer_visits(batch), "rejected": rejected}

    @timer(interval=VISIT_FLUSH_SECONDS)
    def flush_visits(self):
        self._h().flush_visits()

    @rpc
    def last_visit(self, visitor_id, since_iso=None) -> dict | None:
        return self._h().last_visit(visitor_id, since_iso)

    @rpc
    def shop_stats(self, shop_id, since=None, until=None) -> dict:
        return self._h().shop_stats(int(shop_id), since, until)

    # -- events -----------------------------------------------------------------------------
    @event_handler("orders", "order_paid")
    def on_order_paid(self, event):
        self._h().order_paid(event, OrderPaid.model_validate(event["data"]))

    @event_handler("catalog", "product_changed")
    def on_product_changed(self, event):
        self._h().forget(
            event,
            "on_product_changed",
            product_id=ProductSnapshot.model_validate(event["data"]).product_id,
        )

    @event_handler("catalog", "product_delisted")
    def on_product_delisted(self, event):
        self._h().forget(
            event,
            "on_product_delisted",
            product_id=ProductSnapshot.model_validate(event["data"]).product_id,
        )

    @event_handler("catalog", "product_listed")
    def on_product_listed(self, event):
        self._h().forget(
            event,
            "on_product_listed",
            product_id=ProductSnapshot.model_validate(event["data"]).product_id,
        )

    @event_handler("shop", "selection_changed")
    def on_selection_changed(self, event):
        data = SelectionChanged.model_validate(event["data"])
        self._h().forget(
            event, "on_selection_changed", product_id=data.product_id, shop_id=data.shop_id
        )

    @event_handler("shop", "shop_activated")
    def on_shop_activated(self, event):
        self._h().forget(
            event, "on_shop_activated", shop_id=ShopChanged.model_validate(event["data"]).shop_id
        )
