"""The stats read model: each paid order of a shop, once (``order_paid`` from orders)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, bindparam, text
from sqlalchemy.engine import CursorResult

from share import domain
from share.models import PaidOrder
from shared import clock
from shared.contracts.events import OrderPaid

PAID_ORDERS = cast(Table, PaidOrder.__table__)
# text, so SQLAlchemy compiles it once (it caches no dialect ``on_conflict_do_nothing()``)
COUNT_PAID_ORDER = text(
    "INSERT INTO paid_orders (order_id, shop_id, share_id, paid_fen, paid_at, day)"
    " VALUES (:order_id, :shop_id, :share_id, :paid_fen, :paid_at, :day) ON CONFLICT DO NOTHING"
).bindparams(bindparam("paid_at", type_=PAID_ORDERS.c.paid_at.type))


def order_paid(uow: Any, utc_offset_hours: int, event: dict, data: OrderPaid) -> bool:
    """Count a paid order in its shop's stats; False when it was already counted (or has no
    shop: a buyer who came without a share or shop number). Two statements, no read: the
    inbox claim, then the row (``ON CONFLICT DO NOTHING``: one row per order even when two
    events name it)."""
    if not uow.claim(event, "on_order_paid") or data.shop_id is None:
        return False
    paid_at = clock.parse(data.paid_at)
    added = uow.session.execute(
        COUNT_PAID_ORDER,
        {
            "order_id": data.order_id,
            "shop_id": data.shop_id,
            "share_id": data.share_id,
            "paid_fen": data.paid_fen,
            "paid_at": paid_at,
            "day": domain.stats_day(paid_at, utc_offset_hours),
        },
    )
    assert isinstance(added, CursorResult)  # an INSERT's result counts its rows
    return added.rowcount == 1
