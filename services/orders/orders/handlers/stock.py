"""Stock owed to the catalog.

A reservation is made by one RPC per order at checkout (``reserve``: all lines or none, at the
price the order was priced at). A payment owes the catalog no call: the catalog commits the
reservation when it consumes ``order_paid`` (idempotent), so the order is ``committed`` in the
payment's transaction. A state change that gives stock back records it on the order
(``stock_state`` to_release; to_return for a paid order) in its own transaction; the call is
made right after the commit (``call_catalog``) and its answer recorded in a new transaction
(``record``). When the call fails (catalog down, crash) the timer makes it later (``owed``):
release is idempotent at the catalog, so stock is never leaked nor oversold. (``to_commit`` is
only left on orders paid before the catalog consumed ``order_paid``; the timer commits them.)
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from orders import domain
from orders.handlers.common import STOCK_OWED, Owed, UnitOfWork
from orders.models import Order
from shared.contracts.events import StockCommitRefused
from shared.errors import Conflict, NotFound

log = logging.getLogger(__name__)


def reserve(catalog: Any, rules: domain.OrderRules, reservation_id: str, items: list[dict]) -> None:
    """Hold the order's stock at the catalog for as long as the order may stay unpaid (orders
    owns that rule: the catalog is told, it keeps no TTL of its own)."""
    catalog.reserve_stock(reservation_id, items, hold_seconds=domain.stock_hold_seconds(rules))


def price_moved(exc: Conflict) -> bool:
    """The catalog refused the reservation because a line's price is no longer the one the
    order was priced at (orders' read model lagged a ``product_changed``)."""
    details = exc.details if isinstance(exc.details, list) else []
    return any(isinstance(d, dict) and d.get("reason") == "price_changed" for d in details)


def owed(session: Session) -> list[Owed]:
    """Every stock call still owed (the timer retries them)."""
    rows = session.execute(
        select(Order.id, Order.stock_state, Order.reservation_id).where(
            Order.stock_state.in_(STOCK_OWED)
        )
    ).all()
    return [Owed(*row) for row in rows]


def call_catalog(catalog: Any, row: Owed) -> str | None:
    """Make one owed call; the new ``stock_state``, or None to retry later."""
    try:
        if row.stock_state == "to_commit":
            catalog.commit_stock(row.reservation_id)
            return "committed"
        try:
            if row.stock_state == "to_return":
                catalog.release_stock(row.reservation_id, paid=True)
            else:
                catalog.release_stock(row.reservation_id)
        except NotFound:  # never reserved (crash before the reservation): nothing held
            pass
        return "released"
    except Conflict as exc:
        if row.stock_state != "to_commit":
            raise
        # The catalog refuses to commit (its hold lapsed and the stock is gone): stop
        # retrying; the paid order is flagged for the supplier (refund or restock).
        log.error("catalog refused to commit stock for paid order %s: %s", row.order_id, exc)
        return "commit_refused"
    except Exception as exc:  # catalog down or failing: the timer retries
        log.warning(
            "stock %s for order %s failed (%s); retrying later", row.stock_state, row.order_id, exc
        )
        return None


def refused(uow: UnitOfWork, refusal: StockCommitRefused) -> bool:
    """The catalog refused to commit the paid order's stock on ``order_paid`` (its hold
    lapsed and the stock is gone, or it was never reserved): the order is flagged
    ``commit_refused`` for the supplier (refund or restock), unless its stock moved on
    meanwhile (e.g. a full refund already owes it back). True when it was flagged."""
    log.error(
        "catalog refused to commit stock for paid order %s (%s)", refusal.order_id, refusal.reason
    )
    flagged = uow.session.execute(
        update(Order)
        .where(
            Order.id == refusal.order_id,
            Order.reservation_id == refusal.reservation_id,
            Order.stock_state.in_(("committed", "to_commit")),
        )
        .values(stock_state="commit_refused")
    )
    assert isinstance(flagged, CursorResult)  # an UPDATE's result counts its rows
    return flagged.rowcount == 1


def record(uow: UnitOfWork, row: Owed, done: str) -> None:
    """The catalog's answer, unless another worker already recorded one."""
    uow.session.execute(
        update(Order)
        .where(Order.id == row.order_id, Order.stock_state == row.stock_state)
        .values(stock_state=done)
    )
