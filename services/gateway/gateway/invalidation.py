"""What every gateway process drops when catalog or shop announce a change.

The gateway keeps landing pages (``gateway.web.landing``: ``/s/<code>``; ``gateway.routes.share``:
``/classic/s/<code>``) and catalog products for a while. These are BROADCAST handlers
(``shared.broadcast``): every gateway instance gets every event and drops its own copies at
once, so no gateway shows an old price for the rest of a TTL. In-process only, idempotent.
"""

from __future__ import annotations

import logging

from gateway.web import landing
from shared.broadcast import broadcast_handler
from shared.contracts.events import ProductSnapshot, SelectionChanged, ShopChanged, ShopSuspension

log = logging.getLogger(__name__)


class CacheInvalidation:
    share_landing_state: object  # gateway.routes.share.LandingState (its dependency provider)

    def _drop_pages(self, product_id: int | None = None, shop_id: int | None = None) -> None:
        dropped = landing.forget(product_id=product_id, shop_id=shop_id)
        classic = getattr(self, "share_landing_state", None)
        if classic is not None:
            dropped += classic.pages.discard_items_where(
                lambda _code, entry: landing.touches(entry[1], product_id, shop_id)
            )
        log.debug("dropped %d cached page(s) (product %s, shop %s)", dropped, product_id, shop_id)

    def _product(self, event: dict) -> None:
        self._drop_pages(product_id=ProductSnapshot.model_validate(event["data"]).product_id)

    @broadcast_handler("catalog", "product_changed")
    def drop_pages_on_product_changed(self, event):
        self._product(event)

    @broadcast_handler("catalog", "product_delisted")
    def drop_pages_on_product_delisted(self, event):
        self._product(event)

    @broadcast_handler("catalog", "product_listed")
    def drop_pages_on_product_listed(self, event):
        self._product(event)

    @broadcast_handler("shop", "selection_changed")
    def drop_pages_on_selection_changed(self, event):
        data = SelectionChanged.model_validate(event["data"])
        self._drop_pages(product_id=data.product_id, shop_id=data.shop_id)

    @broadcast_handler("shop", "shop_activated")
    def drop_pages_on_shop_activated(self, event):
        self._drop_pages(shop_id=ShopChanged.model_validate(event["data"]).shop_id)

    @broadcast_handler("shop", "shop_suspended")
    def drop_pages_on_shop_suspended(self, event):
        self._drop_pages(shop_id=ShopSuspension.model_validate(event["data"]).shop_id)

    @broadcast_handler("shop", "shop_reinstated")
    def drop_pages_on_shop_reinstated(self, event):
        self._drop_pages(shop_id=ShopSuspension.model_validate(event["data"]).shop_id)
