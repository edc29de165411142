"""Stock holds for orders: reserve (all lines or none), commit when paid, release when
cancelled, expired or refunded before shipping. Each call is idempotent per reservation id."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import (
    Integer,
    Table,
    case,
    column,
    func,
    insert,
    select,
    true,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError

from catalog import domain
from catalog.domain import CatalogRules
from catalog.models import Product, Reservation, ReservationLine
from catalog.queries import find_reservation, reservation_dict, reservation_lines, snapshot
from shared import clock
from shared.errors import Conflict, NotFound

log = logging.getLogger(__name__)

P = cast(Table, Product.__table__)
RESERVATIONS = cast(Table, Reservation.__table__)
RESERVATION_LINES = cast(Table, ReservationLine.__table__)


def reserve(
    uow: Any, r: CatalogRules, reservation_id: str, items: list[dict], hold_seconds: int | None
) -> dict:
    """Hold every line or none, each at the unit price the caller priced it at when it gives
    one. The hold expires ``hold_seconds`` (the caller's deadline, ``default_hold_seconds``
    when it gives none) plus ``reservation_grace_seconds`` from now. A second call with the
    same id answers the first one's outcome. On PostgreSQL 1 + one statement per line: the
    reservation with its lines (``_hold``; ON CONFLICT: a repeat finds it), then one
    conditional UPDATE per line."""
    now = clock.now()
    lines = domain.merge_lines(items)
    prices = {
        int(i["product_id"]): int(i["unit_price_fen"])
        for i in items
        if i.get("unit_price_fen") is not None
    }
    expires = domain.hold_expires_at(now, hold_seconds, r)
    reservation = {
        "id": reservation_id,
        "status": domain.HELD,
        "created_at": now,
        "expires_at": expires,
        "updated_at": now,
    }
    if not _hold(uow.session, reservation, lines):  # made before (a retry, a raced twin)
        existing = find_reservation(uow.session, reservation_id)
        assert existing is not None
        return existing
    short = _take(uow, lines, prices)
    if short:  # the reservation and its lines roll back with the transaction
        raise Conflict(
            "not enough stock for every line; nothing was reserved",
            details=short,
            code="insufficient_stock",
        )
    held = {"id": reservation_id, "status": domain.HELD, "created_at": now, "expires_at": expires}
    return reservation_dict(SimpleNamespace(**held), lines)


def _hold(session: Any, reservation: dict, lines: list[tuple[int, int]]) -> bool:
    """Write the reservation and its lines unless the id exists; False when it did. On
    PostgreSQL one statement: ``WITH r AS (INSERT … ON CONFLICT DO NOTHING RETURNING id),
    l AS (INSERT INTO reservation_lines SELECT … FROM r, (VALUES …)) SELECT count(*) FROM r``
    — no line without its new reservation (a line of an unknown product is left to
    ``_take``, which refuses it and rolls everything back)."""
    rid = reservation["id"]
    if session.get_bind().dialect.name != "postgresql":
        added = session.execute(
            sqlite_insert(RESERVATIONS).values(**reservation).on_conflict_do_nothing()
        )
        assert isinstance(added, CursorResult)
        if not added.rowcount:
            return False
        # as on PostgreSQL: a line of an unknown product is not written (_take refuses it)
        known = set(session.scalars(select(P.c.id).where(P.c.id.in_([p for p, _ in lines]))))
        rows = [
            {"reservation_id": rid, "product_id": p, "quantity": q} for p, q in lines if p in known
        ]
        if rows:
            session.execute(insert(RESERVATION_LINES), rows)
        return True
    new = (
        pg_insert(RESERVATIONS)
        .values(**reservation)
        .on_conflict_do_nothing()
        .returning(RESERVATIONS.c.id)
        .cte("new_reservation")
    )
    wanted = values(column("product_id", Integer), column("quantity", Integer), name="wanted").data(
        lines
    )
    lines_written = (
        insert(RESERVATION_LINES)
        .from_select(
            ["reservation_id", "product_id", "quantity"],
            select(new.c.id, wanted.c.product_id, wanted.c.quantity)
            .select_from(new.join(wanted, true()))
            .where(wanted.c.product_id.in_(select(P.c.id))),  # unknown: _take says not_found
        )
        .cte("new_lines")
    )
    made = session.execute(select(func.count()).select_from(new).add_cte(lines_written))
    return bool(made.scalar_one())


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


def commit_paid(uow: Any, reservation_id: str) -> str:
    """``order_paid`` consumed: commit the order's reservation (idempotent: a committed or
    returned reservation stays as it is). Paid after the hold lapsed: the stock is taken
    again if it is still there; if it is gone the refusal is logged for the supplier (refund
    or restock: Conflict ``reservation_expired``, nothing changes). The reservation's status.

    The common case (held → committed) in two statements and no read: the transition, then
    ``units_sold`` of every line in one ``UPDATE … FROM reservation_lines`` (adding only, so
    the never-below-zero guard of ``_count_sold`` is not needed)."""
    if _transition(uow.session, reservation_id, domain.HELD, domain.COMMITTED):
        uow.session.execute(
            update(P)
            .where(
                P.c.id == RESERVATION_LINES.c.product_id,
                RESERVATION_LINES.c.reservation_id == reservation_id,
            )
            .values(units_sold=P.c.units_sold + RESERVATION_LINES.c.quantity)
        )
        return domain.COMMITTED
    return str(commit(uow, reservation_id)["status"])


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
            update(P).where(*conditions).values(stock=P.c.stock - qty).returning(P.c.stock)
        ).first()
        if row is None:
            current = uow.session.execute(
                select(P.c.stock, P.c.status, P.c.supplier_active, P.c.price_fen).where(
                    P.c.id == product_id
                )
            ).first()
            if current is None:
                reason, available = "not_found", 0
            elif not (current.status == domain.LISTED and current.supplier_active):
                reason, available = "unavailable", 0
            elif current.stock < qty:
                reason, available = "insufficient_stock", current.stock
            else:
                reason, available = "price_changed", current.stock
            short.append(
                {
                    "product_id": product_id,
                    "requested": qty,
                    "available": available,
                    "reason": reason,
                }
            )
        elif row.stock == 0:
            _emit_stock_change(uow, product_id)
    return short


def _give_back(uow: Any, lines: list[tuple[int, int]]) -> None:
    for product_id, qty in lines:
        row = uow.session.execute(
            update(P).where(P.c.id == product_id).values(stock=P.c.stock + qty).returning(P.c.stock)
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
