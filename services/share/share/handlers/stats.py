"""The stats read model: each paid order of a shop, once (``order_paid`` from orders)."""

from __future__ import annotations

from typing import Any

from share import domain
from share.models import PaidOrder
from shared import clock
from shared.contracts.events import OrderPaid


def order_paid(uow: Any, utc_offset_hours: int, event: dict, data: OrderPaid) -> bool:
    """Count a paid order in its shop's stats; False when it was already counted (or has no
    shop: a buyer who came without a share or shop number)."""
    if not uow.claim(event, "on_order_paid"):
        return False
    if data.shop_id is None or uow.session.get(PaidOrder, data.order_id) is not None:
        return False
    paid_at = clock.parse(data.paid_at)
    uow.session.add(
        PaidOrder(
            order_id=data.order_id,
            shop_id=data.shop_id,
            share_id=data.share_id,
            paid_fen=data.paid_fen,
            paid_at=paid_at,
            day=domain.stats_day(paid_at, utc_offset_hours),
        )
    )
    return True
