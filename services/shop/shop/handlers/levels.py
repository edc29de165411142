"""Keeper levels (新晋 / 资深 / 精英 / 超级) from a finished month's settled sales, recorded once
per month; each change is a ``level_changed`` event carrying the level's ``bonus_bps`` (shop owns
the thresholds and the bonuses; payouts applies the bonus it is told)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from shared import clock
from shared.contracts.events import LevelChanged
from shared.errors import Conflict
from shop import domain, queries
from shop.domain import ShopRules
from shop.handlers._races import LostRace
from shop.models import LevelRecalculation, Shop


def recalculate(uow, rules: ShopRules, month: str, settled_sales: Mapping[Any, Any]) -> dict:
    """Record ``month``'s level changes (from payouts' ``settled_sales(month)``) and emit
    ``level_changed`` for each. Raises ``LostRace`` when a concurrent run recorded the month
    first (the entrypoint then answers that record)."""
    domain.ensure_month_closed(month, clock.now())
    sales = domain.normalize_sales(settled_sales)
    session = uow.session
    rec = LevelRecalculation(month=month, changes="[]", shops_considered=0, ran_at=clock.now())
    session.add(rec)
    try:
        session.flush()  # claims the month: a concurrent run waits here, then fails the key
    except IntegrityError as exc:
        raise LostRace(Conflict(f"the levels of {month} are being recalculated")) from exc
    shops = session.scalars(select(Shop).order_by(Shop.id).with_for_update()).all()
    states = [domain.ShopLevelState(x.id, x.level, x.level_month) for x in shops]
    changes = domain.level_changes(states, sales, month, rules)
    by_id = {x.id: x for x in shops}
    for change in changes:
        shop = by_id[change.shop_id]
        shop.level = change.new_level
        shop.view_version = (shop.view_version or 0) + 1
        uow.emit(
            "level_changed",
            LevelChanged(
                shop_id=change.shop_id,
                month=month,
                old_level=change.old_level,
                new_level=change.new_level,
                bonus_bps=change.bonus_bps,
            ),
        )
    considered = 0
    for shop in shops:
        if shop.level_month is None or shop.level_month <= month:
            shop.level_month = month
            considered += 1
    rec.changes = json.dumps([c.as_dict() for c in changes])
    rec.shops_considered = considered
    session.flush()
    return {**queries.level_result(rec), "replayed": False}
