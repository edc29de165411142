"""Entrypoints of the shop service: each one validates, opens a unit of work, applies a rule.

The work itself is in ``shop.handlers`` (units of work) and ``shop.domain`` (the rules).
"""

from __future__ import annotations

import logging

import eventlet
from nameko.exceptions import RemoteError, UnknownService
from nameko.rpc import RpcProxy, rpc

from shared import clock
from shared.config import rules
from shared.db import Database
from shared.errors import ServiceUnavailable, XiaopuError
from shared.events import event_handler
from shared.platform import PlatformRpc
from shared.timers import configured_timer
from shop import domain, handlers
from shop.identity import identity_check
from shop.models import Base

log = logging.getLogger(__name__)


class ShopService(PlatformRpc):
    name = "shop"
    db = Database(Base.metadata)
    catalog = RpcProxy("catalog")
    payouts = RpcProxy("payouts")

    remote_timeout = 4.0  # below the gateway's RPC deadline

    @property
    def rules(self) -> domain.ShopRules:
        return domain.ShopRules.from_config(rules(self.config))

    def _remote(self, service: str, method: str):
        target = getattr(getattr(self, service), method)

        def call(*args):
            try:
                with eventlet.Timeout(self.remote_timeout):
                    return target(*args)
            except eventlet.Timeout:
                raise ServiceUnavailable(
                    f"the {service} service did not answer in time", details={"service": service}
                )
            except UnknownService:
                raise ServiceUnavailable(
                    f"the {service} service is not running", details={"service": service}
                )
            except RemoteError as exc:
                raise ServiceUnavailable(
                    f"the {service} service failed ({exc.exc_type})", details={"service": service}
                )

        return call

    # --- members --------------------------------------------------------------------------------
    @rpc
    def register_member(self, data):
        return handlers.register_member(self.db, self.rules, data)

    @rpc
    def get_member(self, member_id):
        return handlers.get_member(self.db, self.rules, member_id)

    @rpc
    def me(self, member_id):
        return handlers.me(self.db, self.rules, member_id)

    @rpc
    def grant_shop_quota(self, member_id, data):
        return handlers.grant_shop_quota(self.db, self.rules, member_id, data)

    # --- shops ----------------------------------------------------------------------------------
    @rpc
    def open_shop(self, member_id, data):
        return handlers.open_shop(self.db, self.rules, member_id, data)

    @rpc
    def update_shop(self, actor, shop_id, data):
        return handlers.update_shop(self.db, self.rules, actor, shop_id, data)

    @rpc
    def verify_shop(self, actor, shop_id):
        return handlers.verify_shop(
            self.db, self.rules, identity_check(self.config), actor, shop_id
        )

    @rpc
    def get_shop(self, shop_id):
        return handlers.get_shop(self.db, self.rules, shop_id)

    @rpc
    def get_shop_by_number(self, shop_number):
        return handlers.get_shop_by_number(self.db, self.rules, shop_number)

    @rpc
    def shop_detail(self, actor, shop_id):
        return handlers.shop_detail(self.db, self.rules, actor, shop_id)

    @rpc
    def public_shop(self, shop_number, limit=100, cursor=None):
        return handlers.public_shop(self.db, self.rules, shop_number, limit, cursor)

    @rpc
    def get_keeper_contact(self, shop_id):
        return handlers.get_keeper_contact(self.db, self.rules, shop_id)

    # --- selections -----------------------------------------------------------------------------
    @rpc
    def select_product(self, actor, shop_id, product_id, data=None):
        return handlers.select_product(
            self.db,
            self.rules,
            actor,
            shop_id,
            product_id,
            data or {},
            self._remote("catalog", "get_product"),
        )

    @rpc
    def unselect_product(self, actor, shop_id, product_id):
        handlers.unselect_product(self.db, self.rules, actor, shop_id, product_id)
        return None

    @rpc
    def get_selection(self, shop_id, product_id):
        return handlers.get_selection(self.db, shop_id, product_id)

    # --- the catalog read model -----------------------------------------------------------------
    @event_handler("catalog", "product_listed")
    def on_product_listed(self, event):
        handlers.apply_product_event(self.db, event, "on_product_listed")

    @event_handler("catalog", "product_changed")
    def on_product_changed(self, event):
        handlers.apply_product_event(self.db, event, "on_product_changed")

    @event_handler("catalog", "product_delisted")
    def on_product_delisted(self, event):
        handlers.apply_product_event(self.db, event, "on_product_delisted")

    # --- levels ---------------------------------------------------------------------------------
    @rpc
    def recalculate_levels(self, month):
        return handlers.recalculate_levels(
            self.db, self.rules, month, self._remote("payouts", "settled_sales")
        )

    @configured_timer("level_check_seconds", 60)
    def monthly_levels(self):
        """On the 1st of each month (or the first check after it, if the service was down),
        recalculate the previous month's levels; idempotent per month."""
        month = domain.previous_month(clock.now())
        if handlers.level_record(self.db, month) is not None:
            return
        try:
            result = handlers.recalculate_levels(
                self.db, self.rules, month, self._remote("payouts", "settled_sales")
            )
            log.info("levels recalculated for %s: %d change(s)", month, len(result["changes"]))
        except XiaopuError as exc:
            log.warning("level recalculation for %s postponed: %s", month, exc)
