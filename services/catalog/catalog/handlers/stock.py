"""Stock holds for orders: reserve (all lines or none), commit when paid, release when
cancelled, expired or refunded before shipping. Each call is idempotent per reservation id."""

from __future__ import annotations

import logging
from collections import Counter
from functools import lru_cache
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Table, case, insert, select, text, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import TextClause

from catalog import domain
from catalog.domain import CatalogRules
from catalog.models import Product, Reservation, ReservationLine
from catalog.queries import find_reservation, reservation_dict, reservation_lines, snapshot
from shared import clock
from shared.db import insert_or_ignore
from shared.errors import Conflict, NotFound

log = logging.getLogger(__name__)

P = cast(Table, Product.__table__)
RESERVATIONS = cast(Table, Reservation.__table__)
RESERVATION_LINES = cast(Table, ReservationLine.__table__)
# what buyers see after an UPDATE (domain.displayed_stock): sold out / back in stock is told
SHOWN = (P.c.stock + P.c.allotted).label("stock")
Refusal = Conflict | NotFound  # a paid order's stock that could not be committed, and why


def reserve(
    uow: Any, r: CatalogRules, reservation_id: str, items: list[dict], hold_seconds: int | None
) -> dict:
    """Hold every line or none, each at the unit price the caller priced it at when it gives
    one. The hold expires ``hold_seconds`` (the caller's deadline, ``default_hold_seconds``
    when it gives none) plus ``reservation_grace_seconds`` from now. A second call with the
    same id answers the first one's outcome.

    On PostgreSQL ONE statement (``_reserve_sql``): the reservation (ON CONFLICT: a repeat
    finds it), each line's conditional stock UPDATE in product-id order, the lines — then,
    only on a refusal, one read to say why, and only on a repeat one read of the first
    outcome. Elsewhere (SQLite: development and the handler unit tests) the same steps one
    statement each (``_hold``, ``_take``)."""
    now = clock.now()
    lines = domain.merge_lines(items)
    prices = {
        int(i["product_id"]): int(i["unit_price_fen"])
        for i in items
        if i.get("unit_price_fen") is not None
    }
    expires = domain.hold_expires_at(now, hold_seconds, r)
    held = {"id": reservation_id, "status": domain.HELD, "created_at": now, "expires_at": expires}
    if uow.session.get_bind().dialect.name == "postgresql":
        made, left = _reserve_pg(uow.session, held, lines, prices)
        if not made:  # made before (a retry, a raced twin): its outcome
            return _found(uow, reservation_id)
        if None in left:  # a line did not fit: the whole transaction rolls back
            first_short = left.index(None)
            raise _insufficient(_why_short(uow.session, lines[first_short:], prices))
        for (product_id, _qty), stock_left in zip(lines, left, strict=True):
            if stock_left == 0:
                _emit_stock_change(uow, product_id)
        return reservation_dict(SimpleNamespace(**held), lines)
    if not _hold(uow.session, {**held, "updated_at": now}, lines):
        return _found(uow, reservation_id)
    short = _take(uow, lines, prices)
    if short:  # the reservation and its lines roll back with the transaction
        raise _insufficient(short)
    return reservation_dict(SimpleNamespace(**held), lines)


def _insufficient(short: list[dict]) -> Conflict:
    return Conflict(
        "not enough stock for every line; nothing was reserved",
        details=short,
        code="insufficient_stock",
    )


@lru_cache(maxsize=32)
def _reserve_sql(n_lines: int) -> TextClause:
    """The reservation of ``n_lines`` lines as one PostgreSQL statement (its text is built
    once per line count, so SQLAlchemy compiles it once).

    ``new`` writes the reservation unless its id exists. ``t0 … tN`` take each line's stock
    with the no-oversell condition (``stock >= q``, listed, supplier active, at the caller's
    price when it gives one); each runs only when the one before took its line (``EXISTS``
    is a one-time filter evaluated before the UPDATE scans), so the row locks are taken one
    after the other in product-id order (``domain.merge_lines``): two reservations never
    deadlock, and a concurrent reservation of the same row waits for the lock and re-checks
    the condition on the row as it committed (PostgreSQL's UPDATE under READ COMMITTED).
    The lines are written when the last line was taken. The answer: whether the reservation
    was new, and each line's stock left after it as buyers see it (``stock + allotted``; NULL: not
    taken)."""
    takes = []
    for i in range(n_lines):
        after = "new" if i == 0 else f"t{i - 1}"
        takes.append(
            f"t{i} AS (UPDATE products SET stock = stock - :q{i}"
            f" WHERE id = :p{i} AND stock >= :q{i} AND status = :listed AND supplier_active"
            f" AND (CAST(:price{i} AS BIGINT) IS NULL OR price_fen = CAST(:price{i} AS BIGINT))"
            f" AND EXISTS (SELECT FROM {after}) RETURNING stock + allotted AS stock)"
        )
    last = f"t{n_lines - 1}"
    wanted = ", ".join(f"(CAST(:p{i} AS INTEGER), CAST(:q{i} AS INTEGER))" for i in range(n_lines))
    lefts = ", ".join(f"(SELECT stock FROM t{i})" for i in range(n_lines))
    return text(
        "WITH new AS (INSERT INTO reservations (id, status, created_at, expires_at, updated_at)"
        " VALUES (:id, :held, :now, :expires, :now) ON CONFLICT DO NOTHING RETURNING id), "
        + ", ".join(takes)
        + ", lines AS (INSERT INTO reservation_lines (reservation_id, product_id, quantity)"
        f" SELECT new.id, w.product_id, w.quantity FROM new, (VALUES {wanted})"
        f" AS w (product_id, quantity) WHERE EXISTS (SELECT FROM {last}))"
        f" SELECT (SELECT count(*) FROM new) AS made, ARRAY[{lefts}]::INTEGER[] AS left"
    )


def _reserve_pg(
    session: Any, held: dict, lines: list[tuple[int, int]], prices: dict[int, int]
) -> tuple[bool, list[int | None]]:
    """Run ``_reserve_sql``: (the reservation is new, each line's stock left or None)."""
    params: dict[str, Any] = {
        "id": held["id"],
        "held": domain.HELD,
        "listed": domain.LISTED,
        "now": held["created_at"],
        "expires": held["expires_at"],
    }
    for i, (product_id, qty) in enumerate(lines):
        params[f"p{i}"], params[f"q{i}"] = product_id, qty
        params[f"price{i}"] = prices.get(product_id)
    row = session.connection().execute(_reserve_sql(len(lines)), params).one()  # Core: no ORM layer
    return bool(row.made), list(row.left)


def _why_short(session: Any, lines: list[tuple[int, int]], prices: dict[int, int]) -> list[dict]:
    """The refusal's details: each line (from the first one not taken on) that does not fit
    the product as it is now, and why; one read."""
    found = {
        row.id: row
        for row in session.execute(
            select(P.c.id, P.c.stock, P.c.status, P.c.supplier_active, P.c.price_fen).where(
                P.c.id.in_([p for p, _ in lines])
            )
        )
    }
    short = []
    for product_id, qty in lines:
        reason, available = domain.short_line(found.get(product_id), qty, prices.get(product_id))
        if reason is not None:
            short.append(
                {
                    "product_id": product_id,
                    "requested": qty,
                    "available": available,
                    "reason": reason,
                }
            )
    if not short:  # the line that failed fits now (stock came back meanwhile): still refused
        product_id, qty = lines[0]
        short.append(
            {
                "product_id": product_id,
                "requested": qty,
                "available": found[product_id].stock,
                "reason": "insufficient_stock",
            }
        )
    return short


def _hold(session: Any, reservation: dict, lines: list[tuple[int, int]]) -> bool:
    """(SQLite) Write the reservation and its lines unless the id exists; False when it did.
    A line of an unknown product is not written (``_take`` refuses it and everything rolls
    back)."""
    rid = reservation["id"]
    added = session.execute(insert_or_ignore(RESERVATIONS, "sqlite"), reservation)
    assert isinstance(added, CursorResult)
    if not added.rowcount:
        return False
    known = set(session.scalars(select(P.c.id).where(P.c.id.in_([p for p, _ in lines]))))
    rows = [{"reservation_id": rid, "product_id": p, "quantity": q} for p, q in lines if p in known]
    if rows:
        session.execute(insert(RESERVATION_LINES), rows)
    return True


def commit(uow: Any, reservation_id: str) -> dict:
    """The order was paid: the held stock is sold. Paid after the hold expired: the stock is
    taken again if it is still there (else 409 ``reservation_expired``)."""
    if _transition(uow.session, reservation_id, domain.HELD, domain.COMMITTED):
        _count_sold(uow, reservation_lines(uow.session, reservation_id), +1)
        return _found(uow, reservation_id)
    found = find_reservation(uow.session, reservation_id)
    if found is None:
        raise NotFound(f"reservation {reservation_id} not found", code="reservation_not_found")
    if found["status"] == domain.RELEASED and _transition(
        uow.session, reservation_id, domain.RELEASED, domain.COMMITTED
    ):
        short = _take(uow, reservation_lines(uow.session, reservation_id))
        if short:
            raise Conflict(
                "the reservation expired and the stock is gone",
                details=short,
                code="reservation_expired",
            )
        _count_sold(uow, reservation_lines(uow.session, reservation_id), +1)
        return _found(uow, reservation_id)
    return found


def release(uow: Any, reservation_id: str, paid: bool = False) -> dict:
    """Give the stock back: a hold that is cancelled or expires, or paid stock whose order was
    fully refunded before shipping (→ returned). Each happens at most once.

    ``paid``: the order was paid, and the catalog commits a paid order's reservation when it
    consumes ``order_paid`` — which may come AFTER this call. So a paid release ends the
    reservation as returned whatever it holds (held: the stock goes back; released by the
    hold's lapse: nothing is held; committed: back, and no longer sold), and the late commit
    finds it returned and changes nothing."""
    if _transition(
        uow.session, reservation_id, domain.HELD, domain.RETURNED if paid else domain.RELEASED
    ):
        _give_back(uow, reservation_lines(uow.session, reservation_id))
    elif _transition(uow.session, reservation_id, domain.COMMITTED, domain.RETURNED):
        lines = reservation_lines(uow.session, reservation_id)
        _give_back(uow, lines)
        _count_sold(uow, lines, -1)
    elif paid:
        _transition(uow.session, reservation_id, domain.RELEASED, domain.RETURNED)
    found = find_reservation(uow.session, reservation_id)
    if found is None:  # never reserved (e.g. the reservation itself failed): nothing to do
        return {"reservation_id": reservation_id, "status": "unknown", "items": []}
    return found


def commit_paid(uow: Any, reservation_ids: list[str]) -> dict[str, str | Refusal]:
    """``order_paid`` consumed (a batch of them): commit each order's reservation. Idempotent:
    a committed or returned reservation stays as it is. Paid after the hold lapsed: the stock
    is taken again if it is still there, else that reservation is refused (Conflict
    ``reservation_expired``, nothing of it changes); no reservation by that id: NotFound
    ``reservation_not_found``. Per id: the reservation's status, or the refusal.

    On PostgreSQL three statements for the whole batch, no read: every held reservation of
    the batch → committed, with its lines and the status of the others (``COMMIT_PAID``);
    then ``units_sold`` of every product sold (``ADD_SOLD``, adding only, so the
    never-below-zero guard of ``_count_sold`` is not needed). Only a lapsed hold, a missing
    reservation or a race with a release goes on to ``commit``, alone (a savepoint: its
    refusal rolls back nothing of the others)."""
    if not reservation_ids:
        return {}
    outcome: dict[str, str | Refusal] = {}
    if uow.session.get_bind().dialect.name == "postgresql":
        sold: Counter[int] = Counter()
        for row in uow.session.connection().execute(  # Core: no ORM layer
            COMMIT_PAID,
            {
                "ids": reservation_ids,
                "held": domain.HELD,
                "committed": domain.COMMITTED,
                "now": clock.now(),
            },
        ):
            if row.moved:
                outcome[row.id] = domain.COMMITTED
                if row.product_id is not None:
                    sold[row.product_id] += row.quantity
            elif row.was in (domain.COMMITTED, domain.RETURNED):
                outcome[row.id] = row.was
        if sold:
            products = sorted(sold)
            uow.session.connection().execute(
                ADD_SOLD, {"ids": products, "quantities": [sold[p] for p in products]}
            )
    for reservation_id in reservation_ids:
        if reservation_id not in outcome:
            outcome[reservation_id] = _commit_alone(uow, reservation_id)
    return outcome


def _commit_alone(uow: Any, reservation_id: str) -> str | Refusal:
    try:
        with uow.session.begin_nested():
            return str(commit(uow, reservation_id)["status"])
    except (Conflict, NotFound) as refused:
        return refused


# Held → committed for a batch of ids; per id its lines when it moved, and its status before
# (the statement's snapshot: a data-modifying WITH does not see its own changes).
COMMIT_PAID = text(
    "WITH wanted AS (SELECT DISTINCT unnest(CAST(:ids AS VARCHAR[])) AS id),"
    " moved AS (UPDATE reservations SET status = :committed, updated_at = :now"
    " WHERE id IN (SELECT id FROM wanted) AND status = :held RETURNING id)"
    " SELECT w.id, r.status AS was, m.id IS NOT NULL AS moved, l.product_id, l.quantity"
    " FROM wanted w LEFT JOIN reservations r ON r.id = w.id LEFT JOIN moved m ON m.id = w.id"
    " LEFT JOIN reservation_lines l ON l.reservation_id = m.id"
)
# units_sold += quantity per product. ``locked`` takes the row locks in product-id order
# first (the pseudo-constant count is a one-time filter, evaluated before the UPDATE scans),
# as a reservation does: a batch never deadlocks with a reservation or another batch.
ADD_SOLD = text(
    "WITH locked AS (SELECT id FROM products WHERE id = ANY(CAST(:ids AS INTEGER[]))"
    " ORDER BY id FOR NO KEY UPDATE)"
    " UPDATE products SET units_sold = products.units_sold + s.quantity"
    " FROM unnest(CAST(:ids AS INTEGER[]), CAST(:quantities AS INTEGER[])) AS s (id, quantity)"
    " WHERE products.id = s.id AND (SELECT count(*) FROM locked) >= 0"
)


def is_duplicate_key(exc: IntegrityError) -> bool:
    text = str(exc.orig).lower()
    return "unique" in text or "duplicate" in text or "primary key" in text


def _found(uow: Any, reservation_id: str) -> dict:
    found = find_reservation(uow.session, reservation_id)
    assert found is not None  # it was just moved
    return found


def _take(
    uow: Any, lines: list[tuple[int, int]], prices: dict[int, int] | None = None
) -> list[dict]:
    """Take every line's quantity with a conditional UPDATE (``stock >= qty``, and the price
    the caller expects when ``prices`` names one): the row lock it takes serialises racing
    reservations, and a line that does not fit changes nothing. Returns the short lines
    (empty: all taken). Emits product_changed when a product sells out."""
    short = []
    prices = prices or {}
    for product_id, qty in lines:
        conditions = [
            P.c.id == product_id,
            P.c.stock >= qty,
            P.c.status == domain.LISTED,
            P.c.supplier_active.is_(True),
        ]
        if product_id in prices:
            conditions.append(P.c.price_fen == prices[product_id])
        row = uow.session.execute(
            update(P).where(*conditions).values(stock=P.c.stock - qty).returning(SHOWN)
        ).first()
        if row is None:
            current = uow.session.execute(
                select(P.c.stock, P.c.status, P.c.supplier_active, P.c.price_fen).where(
                    P.c.id == product_id
                )
            ).first()
            reason, available = domain.short_line(current, qty, prices.get(product_id))
            short.append(
                {
                    "product_id": product_id,
                    "requested": qty,
                    "available": available,
                    "reason": reason or "insufficient_stock",  # it fits now: stock came back
                }
            )
        elif row.stock == 0:
            _emit_stock_change(uow, product_id)
    return short


def _give_back(uow: Any, lines: list[tuple[int, int]]) -> None:
    for product_id, qty in lines:
        row = uow.session.execute(
            update(P).where(P.c.id == product_id).values(stock=P.c.stock + qty).returning(SHOWN)
        ).first()
        if row is not None and row.stock == qty:  # it was sold out and is back in stock
            _emit_stock_change(uow, product_id)


def _count_sold(uow: Any, lines: list[tuple[int, int]], sign: int) -> None:
    """Keep ``units_sold`` (``sort=sales``) with committed stock, in one atomic UPDATE per line
    (the SQL of ``domain.units_sold_after``: add, never below zero)."""
    for product_id, qty in lines:
        moved = P.c.units_sold + sign * qty
        uow.session.execute(
            update(P)
            .where(P.c.id == product_id)
            .values(units_sold=case((moved < 0, 0), else_=moved))
        )


def _emit_stock_change(uow: Any, product_id: int) -> None:
    p = uow.session.execute(
        select(Product).where(Product.id == product_id).execution_options(populate_existing=True)
    ).scalar_one()
    if p.status == domain.LISTED and p.supplier_active:
        uow.emit("product_changed", snapshot(p))


def _transition(session: Any, reservation_id: str, from_status: str, to_status: str) -> bool:
    """Move a reservation between states; False when someone else already moved it."""
    result = session.execute(
        update(RESERVATIONS)
        .where(Reservation.id == reservation_id, Reservation.status == from_status)
        .values(status=to_status, updated_at=clock.now())
    )
    return bool(result.rowcount == 1)
