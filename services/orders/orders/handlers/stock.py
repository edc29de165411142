"""Stock: orders' pool of granted units, and what is owed to the catalog.

The pool (``quote_and_take``, ``give_back``): the catalog grants units of a product to orders in
batches (``grant_stock``, at least ``stock_grant_units`` at a time); a checkout takes its lines
from the pool in its own transaction, all or none (``quote_and_take``; short: ``Short``, the
caller asks for a grant and tries again); a cancelled or expired unpaid order gives its units
back to the pool in the transaction that ends it (``let_go``). A grant is recorded ``asked``
before the call (``ask``), its answer added once (``apply``); one left ``asked`` is asked again
by the timer with the same id (the catalog answers a repeat with the first grant). When the
supplier sets the stock, delists or is suspended, the catalog takes the free units back first
(``reclaim``), revoking the grants whose answers were not applied yet. Paid pool orders are
committed at the catalog from ``order_paid`` (``allotted``: no reservation there).

Orders placed before the pool existed hold a reservation at the catalog, made by one RPC at
checkout (``reserve``: all lines or none, at the price the order was priced at). A payment
owes the catalog no call: the catalog commits the reservation (or records the pool order's
sale) when it consumes ``order_paid`` (idempotent), so the order is ``committed`` in the
payment's transaction. A state change that gives stock back to the catalog records it on the
order (``stock_state`` to_release; to_return for a paid order, with a pool order's lines) in
its own transaction; the call is
made right after the commit (``call_catalog``) and its answer recorded in a new transaction
(``record``). When the call fails (catalog down, crash) the timer makes it later (``owed``):
release is idempotent at the catalog, so stock is never leaked nor oversold. (``to_commit`` is
only left on orders paid before the catalog consumed ``order_paid``; the timer commits them.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, text, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from orders import domain
from orders.handlers import products as products_view
from orders.handlers.common import STOCK_OWED, Owed, UnitOfWork
from orders.models import Order, OrderItem, StockGrant, StockPool, StockReclaim
from shared.contracts.events import StockCommitRefused
from shared.db import dialect_insert
from shared.errors import BadRequest, Conflict, Forbidden, NotFound, ValidationFailed
from shared.pg import PREPARED

log = logging.getLogger(__name__)

POOL = cast(Table, StockPool.__table__)
GRANTS = cast(Table, StockGrant.__table__)
ASKED, APPLIED, REVOKED = "asked", "applied", "revoked"
# the catalog's answers to a grant that say nothing was granted (a domain refusal, made on
# purpose); any other failure (timeout, unavailable, a crash inside) leaves the outcome
# unknown: the grant stays asked and is asked again
REFUSED = (BadRequest, Forbidden, NotFound, Conflict, ValidationFailed)


# --- the pool ---------------------------------------------------------------------------------
class Short(Exception):
    """The pool cannot cover these lines ({product_id: quantity}) at the prices the checkout
    quoted ({product_id: unit price}); the transaction that tried rolls back."""

    def __init__(self, lines: dict[int, int], prices: dict[int, int]) -> None:
        super().__init__(lines)
        self.lines = lines
        self.prices = prices


# The checkout's first statement on PostgreSQL: the products of its lines from orders' view of
# the catalog, whether the buyer has a cart, and every line whose product the view knows taken
# from the pool — the read and the take in one round trip. Which lines were taken comes back
# with the products; the caller checks them and rolls back when anything is wrong (an unknown,
# unavailable or short product).
# Every line or none: the pool rows are locked in product-id order first (the pseudo-constant
# count is a one-time filter, evaluated before the UPDATE scans), so two checkouts never
# deadlock; a concurrent checkout of the same product waits for the lock and re-checks
# ``units >= q`` on the row as it committed (PostgreSQL's UPDATE under READ COMMITTED). A line
# is taken only when the pool's price (its latest grant's: the catalog's price then) is the
# view's: a view that lags a price change finds the line short, the checkout asks for a grant
# and learns the new price from its answer.
QUOTE_AND_TAKE = text(
    "WITH locked AS (SELECT product_id FROM stock_pool"
    " WHERE product_id = ANY(CAST(:ids AS BIGINT[])) ORDER BY product_id FOR UPDATE),"
    f" v AS (SELECT {', '.join(products_view.COLUMNS)} FROM {products_view.VIEWS.name}"
    " WHERE product_id = ANY(CAST(:ids AS BIGINT[]))),"
    " taken AS (UPDATE stock_pool SET units = stock_pool.units - w.q, updated_at = :now"
    " FROM unnest(CAST(:ids AS BIGINT[]), CAST(:qs AS INTEGER[])) AS w (p, q)"
    " JOIN v ON v.product_id = w.p"
    " WHERE stock_pool.product_id = w.p AND stock_pool.units >= w.q"
    " AND stock_pool.price_fen = v.price_fen AND (SELECT count(*) FROM locked) >= 0"
    " RETURNING stock_pool.product_id)"
    " SELECT v.*, v.product_id IN (SELECT product_id FROM taken) AS taken,"
    f" EXISTS (SELECT 1 FROM {products_view.CART.name} WHERE buyer_id = :buyer) AS has_cart"
    " FROM v"
).execution_options(**PREPARED)  # hot: parsed once per connection (shared.pg)


def quote_and_take(
    session: Session,
    buyer_id: int,
    lines: Iterable[tuple[int, int]],
    now: datetime,
    check: Callable[[dict[int, dict]], None],
) -> tuple[dict[int, dict], bool]:
    """A checkout's products and stock, in its transaction: the products of ``lines``
    (product id, quantity) that orders' view has (as ``get_products`` shapes them), passed to
    ``check`` (which raises when one is unknown, unavailable, ...), and every line taken from
    the pool at the product's price, or ``Short`` naming the lines the pool cannot cover at
    it. Whether the buyer has a cart to clear comes back with the products. PostgreSQL: one
    round trip (``QUOTE_AND_TAKE``); elsewhere the view's read, ``check``, then one UPDATE
    per line (``_take_each``). On any exception the caller's transaction rolls back: nothing
    was taken."""
    wanted = dict(sorted(lines))
    if session.get_bind().dialect.name == "postgresql":
        params = {"ids": list(wanted), "qs": list(wanted.values()), "buyer": buyer_id, "now": now}
        rows = session.connection().execute(QUOTE_AND_TAKE, params).all()
        products = {int(r.product_id): products_view.shaped(r) for r in rows}
        check(products)
        taken = {int(r.product_id) for r in rows if r.taken}
        has_cart = bool(rows[0].has_cart) if rows else False
    else:
        products, has_cart = products_view.for_checkout(session, buyer_id, list(wanted))
        check(products)
        taken = _take_each(session, wanted, products, now)
    short = {p: q for p, q in wanted.items() if p not in taken}
    if short:
        raise Short(short, {p: int(products[p]["price_fen"]) for p in short})
    return products, has_cart


def _take_each(
    session: Session, wanted: dict[int, int], products: dict[int, dict], now: datetime
) -> set[int]:
    """``QUOTE_AND_TAKE``'s take on a database without array parameters (SQLite): one UPDATE
    per line, in product-id order, at the product's price; the products taken."""
    taken = set()
    for product_id, qty in sorted(wanted.items()):
        row = session.execute(
            update(POOL)
            .where(
                POOL.c.product_id == product_id,
                POOL.c.units >= qty,
                POOL.c.price_fen == int(products[product_id]["price_fen"]),
            )
            .values(units=POOL.c.units - qty, updated_at=now)
            .returning(POOL.c.product_id)
        ).first()
        if row is not None:
            taken.add(product_id)
    return taken


def give_back(session: Session, lines: Iterable[tuple[int, int]], now: datetime) -> None:
    """An unpaid pool order ended (cancelled, expired, its checkout undone): its units are for
    sale again. In product-id order (as ``QUOTE_AND_TAKE`` locks)."""
    back: dict[int, int] = {}
    for product_id, qty in lines:
        back[product_id] = back.get(product_id, 0) + qty
    for product_id, qty in sorted(back.items()):
        _add_to_pool(session, product_id, qty, now)


def _add_to_pool(
    session: Session, product_id: int, units: int, now: datetime, price_fen: int | None = None
) -> None:
    """``units`` more in the product's pool row (made when missing); ``price_fen``: the
    catalog's price a grant answered with, kept as the price the pool sells at."""
    stmt = dialect_insert(POOL, session.get_bind().dialect.name).values(
        product_id=product_id, units=units, updated_at=now, price_fen=price_fen
    )
    changes: dict[str, Any] = {"units": POOL.c.units + stmt.excluded.units, "updated_at": now}
    if price_fen is not None:
        changes["price_fen"] = price_fen
    session.execute(stmt.on_conflict_do_update(index_elements=[POOL.c.product_id], set_=changes))


def let_go(uow: UnitOfWork, order: Order, now: datetime) -> None:
    """An unpaid order ended: a pool order gives its units back to the pool in this
    transaction (``released``); an order holding a catalog reservation owes its release
    (``to_release``: called after the commit, retried by the timer)."""
    if order.stock_from == "pool":
        if order.stock_state == "reserved":
            give_back(uow.session, [(i.product_id, i.quantity) for i in order.items], now)
            order.stock_state = "released"
    else:
        order.stock_state = "to_release"


def insufficient(lines: dict[int, int], have: dict[int, int]) -> Conflict:
    """409 ``insufficient_stock``: each line the pool cannot cover even after a grant."""
    return Conflict(
        "not enough stock for every line; nothing was ordered",
        details=[
            {
                "product_id": p,
                "requested": q,
                "available": have.get(p, 0),
                "reason": "insufficient_stock",
            }
            for p, q in sorted(lines.items())
        ],
        code="insufficient_stock",
    )


def grant_items(wanted: dict[int, int]) -> list[dict]:
    return [{"product_id": p, "quantity": q} for p, q in sorted(wanted.items())]


def pool_units(session: Session, product_ids: Iterable[int]) -> dict[int, int]:
    ids = list(product_ids)
    rows = session.execute(
        select(POOL.c.product_id, POOL.c.units).where(POOL.c.product_id.in_(ids))
    )
    return {int(r.product_id): int(r.units) for r in rows}


# --- grants -----------------------------------------------------------------------------------
def ask(session: Session, grant_id: str, wanted: dict[int, int], now: datetime) -> None:
    """Record the grant about to be asked (before the call: a lost answer is asked again),
    with an empty pool row per product (so ``apply`` and ``reclaim`` both lock the pool row
    first, in product-id order)."""
    for product_id, qty in sorted(wanted.items()):
        session.add(
            StockGrant(
                grant_id=grant_id,
                product_id=product_id,
                wanted=qty,
                quantity=None,
                state=ASKED,
                created_at=now,
            )
        )
        _add_to_pool(session, product_id, 0, now)
    session.flush()  # the Core statements that apply it see the rows


def apply(session: Session, grant_id: str, answer: dict, now: datetime) -> dict[int, int]:
    """The catalog's answer to a grant, added to the pool once (a grant revoked or applied
    meanwhile adds nothing): {product_id: units added}."""
    items = answer.get("items") or []
    granted = {int(i["product_id"]): int(i["quantity"]) for i in items}
    prices = {int(i["product_id"]): i.get("price_fen") for i in items}
    added: dict[int, int] = {}
    for product_id in sorted(granted):
        _lock_pool(session, [product_id])
        moved = session.execute(
            update(GRANTS)
            .where(
                GRANTS.c.grant_id == grant_id,
                GRANTS.c.product_id == product_id,
                GRANTS.c.state == ASKED,
            )
            .values(state=APPLIED, quantity=granted[product_id])
        )
        assert isinstance(moved, CursorResult)
        if moved.rowcount:
            price = prices[product_id]
            _add_to_pool(
                session, product_id, granted[product_id], now, None if price is None else int(price)
            )
            added[product_id] = granted[product_id]
    return {p: k for p, k in added.items() if k}


def answered_prices(answer: dict) -> dict[int, int]:
    """The catalog's current price of each product a grant answered for (when it says)."""
    return {
        int(i["product_id"]): int(i["price_fen"])
        for i in answer.get("items") or []
        if i.get("price_fen") is not None
    }


def price_changed(lines: dict[int, int], have: dict[int, int], moved: dict[int, int]) -> Conflict:
    """409 ``insufficient_stock`` (reason ``price_changed``): the checkout was priced from a
    read model that lags the catalog's price ({product_id: the price now}); nothing was
    ordered, and the read model is refreshed for the buyer's retry."""
    return Conflict(
        "a price changed since the page was shown; nothing was ordered",
        details=[
            {
                "product_id": p,
                "requested": lines[p],
                "available": have.get(p, 0),
                "reason": "price_changed",
                "price_fen": moved[p],
            }
            for p in sorted(moved)
        ],
        code="insufficient_stock",
    )


def unanswered(
    session: Session, before: datetime, products: Iterable[int] | None = None
) -> dict[str, dict[int, int]]:
    """Grants still ``asked`` since before ``before`` (of ``products`` when given): {grant_id:
    {product_id: wanted}} — every line of such a grant (a grant is applied as a whole)."""
    asked = select(GRANTS.c.grant_id).where(GRANTS.c.state == ASKED, GRANTS.c.created_at < before)
    if products is not None:
        asked = asked.where(GRANTS.c.product_id.in_(list(products)))
    found: dict[str, dict[int, int]] = {}
    for row in session.execute(
        select(GRANTS.c.grant_id, GRANTS.c.product_id, GRANTS.c.wanted).where(
            GRANTS.c.state == ASKED, GRANTS.c.grant_id.in_(asked)
        )
    ):
        found.setdefault(row.grant_id, {})[int(row.product_id)] = int(row.wanted)
    return found


def _lock_pool(session: Session, product_ids: list[int]) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(POOL.c.product_id)
            .where(POOL.c.product_id.in_(sorted(product_ids)))
            .order_by(POOL.c.product_id)
            .with_for_update()
        ).all()


# --- the catalog takes units back ---------------------------------------------------------------
def reclaim(
    session: Session, reclaim_id: str, product_ids: list[int], grant_ids: list[str], now: datetime
) -> dict:
    """Give the catalog back every free pool unit of ``product_ids`` (the pool becomes 0) and
    revoke those of ``grant_ids`` (the catalog's grants of these products it has not seen
    settled) whose answers were not applied yet — as a whole, every line (a grant is applied
    as a whole too): applied later, they would add units the catalog took back. Once per
    ``reclaim_id``: a repeat answers the first answer."""
    known = session.get(StockReclaim, reclaim_id)
    if known is not None:
        return dict(known.answer)
    products = sorted(set(product_ids))
    revoked: set[str] = set(grant_ids)
    if grant_ids:
        touched = session.scalars(
            select(GRANTS.c.product_id).where(GRANTS.c.grant_id.in_(grant_ids))
        ).all()
        # every pool row these grants touch, locked in product-id order as apply locks them:
        # no answer is being applied while their states are read
        _lock_pool(session, sorted(set(products) | {int(p) for p in touched}))
        applied = session.scalars(
            select(GRANTS.c.grant_id).where(
                GRANTS.c.grant_id.in_(grant_ids), GRANTS.c.state == APPLIED
            )
        ).all()
        revoked -= set(applied)
        session.execute(
            update(GRANTS)
            .where(GRANTS.c.grant_id.in_(grant_ids), GRANTS.c.state == ASKED)
            .values(state=REVOKED, quantity=0)
        )
    else:
        _lock_pool(session, products)
    units = pool_units(session, products)
    session.execute(
        update(POOL).where(POOL.c.product_id.in_(products)).values(units=0, updated_at=now)
    )
    answer = {
        "reclaim_id": reclaim_id,
        "items": [{"product_id": p, "units": units.get(p, 0)} for p in products],
        "revoked": sorted(revoked),
    }
    session.add(StockReclaim(id=reclaim_id, answer=answer, created_at=now))
    return answer


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
        select(Order.id, Order.stock_state, Order.reservation_id, Order.stock_from).where(
            Order.stock_state.in_(STOCK_OWED)
        )
    ).all()
    pooled = [r.id for r in rows if r.stock_from == "pool"]
    items: dict[int, list[tuple[int, int]]] = {}
    if pooled:
        for i in session.execute(
            select(OrderItem.order_id, OrderItem.product_id, OrderItem.quantity)
            .where(OrderItem.order_id.in_(pooled))
            .order_by(OrderItem.id)
        ):
            items.setdefault(i.order_id, []).append((i.product_id, i.quantity))
    return [Owed(r.id, r.stock_state, r.reservation_id, tuple(items.get(r.id, ()))) for r in rows]


def call_catalog(catalog: Any, row: Owed) -> str | None:
    """Make one owed call; the new ``stock_state``, or None to retry later."""
    try:
        if row.stock_state == "to_commit":
            catalog.commit_stock(row.reservation_id)
            return "committed"
        try:
            if row.stock_state == "to_return" and row.items:  # a pool order
                lines = [{"product_id": p, "quantity": q} for p, q in row.items]
                catalog.release_stock(row.reservation_id, paid=True, items=lines)
            elif row.stock_state == "to_return":
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
