"""Entrypoints of the shop service: each one validates with the contract model, opens the unit of
work (or a read session) and calls one handler (``shop.handlers``) or query (``shop.queries``).

Calls to catalog and payouts happen here, before the unit of work opens, so no transaction is
held while another service answers; ``self.deadline`` keeps them inside the caller's deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from nameko.rpc import RpcProxy

from shared import clock
from shared.config import rules
from shared.contracts.events import ProductSnapshot
from shared.contracts.shop import (
    MemberIn,
    PublicShopQuery,
    RecalculateLevelsIn,
    SelectionIn,
    ShopIn,
    ShopPatch,
    ShopQuotaIn,
    SuspensionIn,
)
from shared.db import Database
from shared.errors import XiaopuError
from shared.events import event_handler
from shared.fingerprints import Fingerprinter
from shared.platform import PlatformRpc
from shared.rpc import rpc
from shared.timers import configured_timer
from shared.validation import an_id, validated
from shop import domain, queries
from shop.handlers import LostRace, levels, members, read_model, selections, shops, suspensions
from shop.identity import identity_check, identity_records
from shop.models import Base

log = logging.getLogger(__name__)
T = TypeVar("T")

RACE_ATTEMPTS = 3  # a handler that lost a race to a concurrent writer runs again, this often


class ShopService(PlatformRpc):
    name = "shop"
    db = Database(Base.metadata)
    catalog = RpcProxy("catalog")
    payouts = RpcProxy("payouts")

    @property
    def rules(self) -> domain.ShopRules:
        return domain.ShopRules.from_config(rules(self.config))

    @property
    def fingerprints(self) -> Fingerprinter:
        return Fingerprinter.from_config(self.config)

    def _write(self, handler: Callable[..., T], *args: Any) -> T:
        """``handler(uow, *args)`` in a unit of work, run again in a fresh one when it lost a
        race (``LostRace``); the last loss answers the handler's public error."""
        for attempt in range(1, RACE_ATTEMPTS + 1):
            try:
                with self.db.unit_of_work() as uow:
                    return uow.once(lambda: handler(uow, *args))
            except LostRace as race:
                if attempt == RACE_ATTEMPTS:
                    raise race.public from race
        raise AssertionError("unreachable")

    # --- members --------------------------------------------------------------------------------
    @rpc
    def register_member(self, data):
        body = validated(MemberIn, data)
        record = identity_records(self.config).record(
            body.phone, body.credit_score, body.real_name_verified, body.real_name
        )
        with self.db.unit_of_work() as uow:
            return uow.once(lambda: members.register_member(uow, self.rules, body, record))

    @rpc
    def member_by_phone(self, phone) -> dict | None:
        """The member registered with ``phone`` (identity's sign-in asks), or None."""
        with self.db.read() as session:
            return queries.member_by_phone(session, str(phone or ""))

    @rpc
    def get_member(self, member_id):
        with self.db.read() as session:
            return queries.get_member(session, self.rules, an_id(member_id, "member"))

    @rpc
    def identity_record(self, member_id):
        identity = identity_check(self.config)
        with self.db.read() as session:
            return queries.identity_record(session, identity, an_id(member_id, "member"))

    @rpc
    def me(self, member_id):
        with self.db.read() as session:
            return queries.me(session, self.rules, an_id(member_id, "member"))

    @rpc
    def grant_shop_quota(self, member_id, data):
        body = validated(ShopQuotaIn, data)
        with self.db.unit_of_work() as uow:
            return uow.once(
                lambda: members.grant_shop_quota(uow, self.rules, an_id(member_id, "member"), body)
            )

    # --- shops ----------------------------------------------------------------------------------
    @rpc
    def open_shop(self, member_id, data):
        body = validated(ShopIn, data)
        return self._write(
            shops.open_shop, self.rules, an_id(member_id, "member"), body, self.fingerprints
        )

    @rpc
    def update_shop(self, actor, shop_id, data):
        body = validated(ShopPatch, data)
        with self.db.unit_of_work() as uow:
            return uow.once(
                lambda: shops.update_shop(uow, self.rules, actor, an_id(shop_id, "shop"), body)
            )

    @rpc
    def verify_shop(self, actor, shop_id):
        identity = identity_check(self.config)
        with self.db.unit_of_work() as uow:
            return uow.once(
                lambda: shops.verify_shop(
                    uow, self.rules, identity, actor, an_id(shop_id, "shop"), self.fingerprints
                )
            )

    @rpc
    def get_shop(self, shop_id):
        with self.db.read() as session:
            return queries.get_shop(session, self.rules, an_id(shop_id, "shop"))

    @rpc
    def get_shop_by_number(self, shop_number):
        with self.db.read() as session:
            return queries.get_shop_by_number(session, self.rules, shop_number)

    @rpc
    def shop_detail(self, actor, shop_id):
        with self.db.read() as session:
            return queries.shop_detail(session, self.rules, actor, an_id(shop_id, "shop"))

    @rpc
    def public_shop(self, shop_number, limit=100, cursor=None):
        page = validated(
            PublicShopQuery, {"limit": 100 if limit is None else limit, "cursor": cursor}
        )
        with self.db.read() as session:
            return queries.public_shop(session, self.rules, shop_number, page.limit, page.cursor)

    @rpc
    def get_keeper_contact(self, shop_id):
        with self.db.read() as session:
            return queries.keeper_contact(session, an_id(shop_id, "shop"))

    # --- suspension (admin) ---------------------------------------------------------------------
    @rpc
    def suspend_shop(self, actor, shop_id, data):
        body = validated(SuspensionIn, data)
        with self.db.unit_of_work() as uow:
            return suspensions.suspend_shop(
                uow, self.rules, actor, an_id(shop_id, "shop"), body.reason
            )

    @rpc
    def reinstate_shop(self, actor, shop_id, data):
        body = validated(SuspensionIn, data)
        with self.db.unit_of_work() as uow:
            return suspensions.reinstate_shop(
                uow, self.rules, actor, an_id(shop_id, "shop"), body.reason
            )

    @rpc
    def suspend_member(self, actor, member_id, data):
        body = validated(SuspensionIn, data)
        with self.db.unit_of_work() as uow:
            return suspensions.suspend_member(
                uow, self.rules, actor, an_id(member_id, "member"), body.reason
            )

    @rpc
    def reinstate_member(self, actor, member_id, data):
        body = validated(SuspensionIn, data)
        with self.db.unit_of_work() as uow:
            return suspensions.reinstate_member(
                uow, self.rules, actor, an_id(member_id, "member"), body.reason
            )

    # --- selections -----------------------------------------------------------------------------
    @rpc
    def select_product(self, actor, shop_id, product_id, data=None):
        body = validated(SelectionIn, data)
        sid, pid = an_id(shop_id, "shop"), an_id(product_id, "product")
        with self.db.read() as session:
            domain.ensure_keeper(actor, queries.load_shop(session, sid).member_id, shop_id=sid)
            known = queries.product_known(session, pid)
        if not known:  # picked before any catalog event about it: ask catalog once
            fetched_at = clock.now()
            product = self.deadline.call(self.catalog, "catalog").get_product(pid)
            with self.db.unit_of_work() as uow:
                read_model.product_fetched(uow, product, fetched_at)
        return self._write(selections.select_product, self.rules, actor, sid, pid, body)

    @rpc
    def unselect_product(self, actor, shop_id, product_id):
        sid, pid = an_id(shop_id, "shop"), an_id(product_id, "product")
        with self.db.unit_of_work() as uow:
            uow.once(lambda: selections.unselect_product(uow, actor, sid, pid))
        return None

    @rpc
    def get_selection(self, shop_id, product_id):
        sid, pid = an_id(shop_id, "shop"), an_id(product_id, "product")
        with self.db.read() as session:
            return queries.get_selection(session, sid, pid)

    @rpc
    def carried_products(self, shop_id, product_ids):
        """Which of ``product_ids`` the shop carries (has selected): orders records it per
        item at checkout (commission accrues only on carried items, payouts' rule)."""
        sid = an_id(shop_id, "shop")
        ids = [int(p) for p in (product_ids or [])][:1000]
        with self.db.read() as session:
            return queries.carried_products(session, sid, ids)

    # --- the catalog read model -----------------------------------------------------------------
    def _product_event(self, event: dict, handler: str) -> None:
        snapshot = validated(ProductSnapshot, event.get("data"))
        with self.db.unit_of_work() as uow:
            read_model.product_event(uow, event, handler, snapshot)

    @event_handler("catalog", "product_listed")
    def on_product_listed(self, event):
        self._product_event(event, "on_product_listed")

    @event_handler("catalog", "product_changed")
    def on_product_changed(self, event):
        self._product_event(event, "on_product_changed")

    @event_handler("catalog", "product_delisted")
    def on_product_delisted(self, event):
        self._product_event(event, "on_product_delisted")

    # --- levels ---------------------------------------------------------------------------------
    def _levels_of(self, month: str) -> dict:
        """A month's level changes: recorded by the first run, replayed by every later one."""
        domain.ensure_month_closed(month, clock.now())
        with self.db.read() as session:
            done = queries.level_record(session, month)
        if done is None:
            sales = self.deadline.call(self.payouts, "payouts").settled_sales(month)
            try:
                with self.db.unit_of_work() as uow:
                    return levels.recalculate(uow, self.rules, month, sales)
            except LostRace as race:  # a concurrent run recorded the month first
                with self.db.read() as session:
                    done = queries.level_record(session, month)
                if done is None:
                    raise race.public from race
        return {**done, "replayed": True}

    @rpc
    def level_of(self, member_id):
        """``{shop_id, level, bonus_bps}`` of the member's (first) shop; shop_id None: no shop."""
        with self.db.read() as session:
            return queries.level_of(session, self.rules, an_id(member_id, "member"))

    @rpc
    def shop_level(self, actor, shop_id):
        """The keeper's level, thresholds and progress to the next one, from this month's
        settled sales so far (payouts' ``settled_sales``)."""
        sid = an_id(shop_id, "shop")
        with self.db.read() as session:
            level = queries.owned_shop_level(session, actor, sid)
        month = domain.current_month(clock.now())
        sales = self.deadline.call(self.payouts, "payouts").settled_sales(month)
        month_sales = domain.normalize_sales(sales).get(str(sid), 0)
        progress = domain.level_progress(level, month_sales, self.rules)
        return {"shop_id": sid, "month": month, **progress}

    @rpc
    def recalculate_levels(self, month):
        return self._levels_of(validated(RecalculateLevelsIn, {"month": month}).month)

    @configured_timer("level_check_seconds", 60)
    def monthly_levels(self):
        """On the 1st of each month (or the first check after it, if the service was down),
        recalculate the previous month's levels; idempotent per month."""
        month = domain.previous_month(clock.now())
        with self.db.read() as session:
            if queries.level_record(session, month) is not None:
                return
        try:
            result = self._levels_of(month)
            log.info("levels recalculated for %s: %d change(s)", month, len(result["changes"]))
        except XiaopuError as exc:
            log.warning("level recalculation for %s postponed: %s", month, exc)
