"""The stats read model: each paid order of a shop, once (``order_paid`` from orders)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, text
from sqlalchemy.engine import CursorResult

from share import domain
from share.models import PaidOrder
from shared import clock
from shared.contracts.events import OrderPaid
from shared.db import as_arrays, insert_or_ignore

PAID_ORDERS = cast(Table, PaidOrder.__table__)
# ON CONFLICT: one row per order, even when two events name it.
COUNT_PAID_ORDERS = text(  # (PostgreSQL) a batch in one INSERT
    "INSERT INTO paid_orders (order_id, shop_id, share_id, paid_fen, paid_at, day)"
    " SELECT * FROM unnest(CAST(:order_id AS INTEGER[]), CAST(:shop_id AS INTEGER[]),"
    " CAST(:share_id AS VARCHAR[]), CAST(:paid_fen AS INTEGER[]),"
    " CAST(:paid_at AS TIMESTAMPTZ[]), CAST(:day AS VARCHAR[])) ON CONFLICT DO NOTHING"
)


def orders_paid(uow: Any, utc_offset_hours: int, events: list[tuple[dict, OrderPaid]]) -> int:
    """Count a batch of paid orders (each ``(event, data)``) in their shops' stats; how many
    were new. An event already handled (inbox) is skipped, and so is an order without a shop
    (a buyer who came without a share or shop number). On PostgreSQL two statements for the
    whole batch, no read: the inbox claim and the rows."""
    data = {event["id"]: paid for event, paid in events}
    fresh = uow.claim_all([event for event, _ in events], "on_order_paid")
    rows = [_row(data[e["id"]], utc_offset_hours) for e in fresh if data[e["id"]].shop_id]
    if not rows:
        return 0
    if uow.session.get_bind().dialect.name != "postgresql":
        one = insert_or_ignore(PAID_ORDERS, uow.session.get_bind().dialect.name)
        return sum(_count(uow.session.execute(one, row)) for row in rows)
    columns = as_arrays(rows, rows[0])
    return _count(uow.session.connection().execute(COUNT_PAID_ORDERS, columns))  # Core: no ORM


def _row(paid: OrderPaid, utc_offset_hours: int) -> dict:
    paid_at = clock.parse(paid.paid_at)
    return {
        "order_id": paid.order_id,
        "shop_id": paid.shop_id,
        "share_id": paid.share_id,
        "paid_fen": paid.paid_fen,
        "paid_at": paid_at,
        "day": domain.stats_day(paid_at, utc_offset_hours),
    }


def _count(result: Any) -> int:
    assert isinstance(result, CursorResult)  # an INSERT's result counts its rows
    return int(result.rowcount)
