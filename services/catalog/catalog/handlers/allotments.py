"""Stock allotments (issue 19): the catalog grants stock in batches to orders' pool instead of
holding it per checkout; orders takes each checkout's units from its pool in its own
transaction and tells the catalog about sales with ``order_paid`` (``allotted``).

* ``grant``: up to the asked units per product, from listed stock of active suppliers:
  ``stock -= k``, ``allotted += k``, one ``stock_grants`` row per product granted.
* ``sell_from_pool``: paid orders whose units came from the pool: their reservation is
  recorded as committed, ``allotted -= q``, ``units_sold += q`` (once per reservation id).
* ``release``: a paid order of the pool refunded before its ``order_paid`` was consumed: the
  reservation is recorded as returned, the units go back on sale.
* ``reclaim`` / ``retry_reclaim``: before a supplier's new stock, a delisting or a suspension,
  the free units in orders' pool come back (orders' ``reclaim_stock``), so nothing is sold
  beyond what the supplier now says.

Conservation per product (``shared.invariants``): the held and committed reservation lines
plus ``allotted`` are the units out at orders (its orders holding stock, its pool, grants in
flight). Row locks are taken in product-id order everywhere (as ``stock.reserve`` does).
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.engine import CursorResult

from catalog import domain
from catalog.handlers.stock import RESERVATION_LINES, RESERVATIONS, SHOWN, _emit_stock_change
from catalog.handlers.stock import release as release_reservation
from catalog.models import Product, StockGrant, StockReclaim
from catalog.queries import find_reservation
from shared import clock
from shared.contracts.catalog import ReclaimOut
from shared.contracts.events import OrderPaid
from shared.db import insert_ignore
from shared.ids import new_id

log = logging.getLogger(__name__)

P = cast(Table, Product.__table__)
GRANTS = cast(Table, StockGrant.__table__)
RECLAIMS = cast(Table, StockReclaim.__table__)
# orders' ``reclaim_stock(reclaim_id, product_ids, grant_ids)`` (the service passes the RPC)
ReclaimCall = Callable[[str, list[int], list[str]], Any]


# --- grants ---------------------------------------------------------------------------------
def grant(uow: Any, grant_id: str, items: list[dict]) -> dict:
    """Grant each line ``k = min(quantity, stock)`` units (``domain.grantable``: 0 unless the
    product exists, is listed and its supplier active); every line is answered, k may be 0.
    Each line also says the product's ``price_fen`` (orders' pool sells at it; None: unknown
    product). A repeat of ``grant_id`` (a retry after a lost reply) grants nothing and answers the
    recorded grant (a line with no row: 0). Two twins racing: the second one's grant rows
    conflict on the primary key and it rolls back (the entrypoint answers the winner's rows,
    ``recorded``).

    On PostgreSQL one statement (``GRANT``): the products locked in product-id order (``FOR
    NO KEY UPDATE`` returns each row as the lock holder committed it, so ``LEAST(stock, q)``
    never oversells), their stock moved to ``allotted``, the grant rows written. Elsewhere
    (SQLite: one writer at a time) one read and one UPDATE per line."""
    lines = domain.merge_lines(items)
    now = clock.now()
    session = uow.session
    if session.get_bind().dialect.name == "postgresql":
        rows = (
            session.connection()
            .execute(  # Core: no ORM layer
                GRANT,
                {
                    "grant_id": grant_id,
                    "ids": [p for p, _ in lines],
                    "quantities": [q for _, q in lines],
                    "listed": domain.LISTED,
                    "granted": domain.GRANTED,
                    "now": now,
                },
            )
            .all()
        )
        if rows and rows[0].repeat:
            return recorded(session, grant_id, lines)
        given = {r.product_id: r.quantity for r in rows if r.quantity is not None}
        return _answer(grant_id, lines, given, {r.product_id: r.price_fen for r in rows})
    if _grant_rows(session, grant_id):
        return recorded(session, grant_id, lines)
    given, prices = {}, {}
    for product_id, qty in lines:
        product = session.execute(
            select(P.c.stock, P.c.status, P.c.supplier_active, P.c.price_fen).where(
                P.c.id == product_id
            )
        ).first()
        prices[product_id] = None if product is None else product.price_fen
        k = domain.grantable(product, qty)
        if k > 0:
            session.execute(
                update(P)
                .where(P.c.id == product_id, P.c.stock >= k)
                .values(stock=P.c.stock - k, allotted=P.c.allotted + k)
            )
            given[product_id] = k
    if given:
        session.execute(
            insert(GRANTS),
            [
                {
                    "grant_id": grant_id,
                    "product_id": p,
                    "quantity": k,
                    "status": domain.GRANTED,
                    "created_at": now,
                }
                for p, k in given.items()
            ],
        )
    return _answer(grant_id, lines, given, prices)


def recorded(session: Any, grant_id: str, lines: list[tuple[int, int]]) -> dict:
    """The grant ``grant_id`` as it was recorded, for the lines asked again (with each
    product's price now)."""
    prices = {
        r.id: r.price_fen
        for r in session.execute(
            select(P.c.id, P.c.price_fen).where(P.c.id.in_([p for p, _ in lines]))
        )
    }
    return _answer(grant_id, lines, _grant_rows(session, grant_id), prices)


def _grant_rows(session: Any, grant_id: str) -> dict[int, int]:
    return {
        r.product_id: r.quantity
        for r in session.execute(
            select(GRANTS.c.product_id, GRANTS.c.quantity).where(GRANTS.c.grant_id == grant_id)
        )
    }


def _answer(
    grant_id: str, lines: list[tuple[int, int]], given: dict[int, int], prices: dict
) -> dict:
    """Every asked line: the units granted (0: none) and the product's price (``price_fen``,
    None for an unknown product), which orders' pool sells at."""
    return {
        "grant_id": grant_id,
        "items": [
            {"product_id": p, "quantity": given.get(p, 0), "price_fen": prices.get(p)}
            for p, _ in lines
        ],
    }


# ``seen``: the grant id was recorded before (a repeat grants nothing). ``locked``: the
# grantable products, locked in product-id order; a row updated by a concurrent transaction
# is returned as that one committed it (READ COMMITTED's re-check of SELECT … FOR UPDATE), so
# ``LEAST(stock, quantity)`` is taken from the stock that is really there. One row per asked
# product: its units granted (NULL: none) and its price (the locked row's when granted).
GRANT = text(
    "WITH asked AS (SELECT a.id, a.quantity FROM unnest(CAST(:ids AS INTEGER[]),"
    " CAST(:quantities AS INTEGER[])) AS a (id, quantity)),"
    " seen AS (SELECT 1 FROM stock_grants WHERE grant_id = :grant_id LIMIT 1),"
    " locked AS (SELECT p.id, p.stock, p.price_fen FROM products p"
    " WHERE p.id = ANY(CAST(:ids AS INTEGER[])) AND p.status = :listed AND p.supplier_active"
    " AND p.stock > 0 AND NOT EXISTS (SELECT FROM seen) ORDER BY p.id FOR NO KEY UPDATE),"
    " taken AS (UPDATE products p SET stock = p.stock - g.k, allotted = p.allotted + g.k"
    " FROM (SELECT l.id, LEAST(l.stock, a.quantity) AS k FROM locked l JOIN asked a"
    " ON a.id = l.id) AS g WHERE p.id = g.id RETURNING p.id, g.k),"
    " written AS (INSERT INTO stock_grants (grant_id, product_id, quantity, status, created_at)"
    " SELECT :grant_id, id, k, :granted, :now FROM taken RETURNING product_id, quantity)"
    " SELECT EXISTS (SELECT FROM seen) AS repeat, a.id AS product_id, w.quantity,"
    " COALESCE(l.price_fen, p.price_fen) AS price_fen"
    " FROM asked a LEFT JOIN written w ON w.product_id = a.id LEFT JOIN locked l ON l.id = a.id"
    " LEFT JOIN products p ON p.id = a.id"
)


# --- sales from the pool --------------------------------------------------------------------
def sell_from_pool(uow: Any, orders: list[OrderPaid]) -> None:
    """Paid orders (``order_paid`` with ``allotted``) whose units came from orders' pool: each
    one's reservation (``reservation_id``) is written as committed with its lines (the event's
    ``lines``, merged per product) unless it exists — a duplicate event, or a refund that
    overtook the event (``release``: returned) — and only a new one counts: ``allotted -= q``,
    ``units_sold += q``. Never refused: the units were taken at checkout. One INSERT for the
    batch's reservations, one for their lines, the products updated in product-id order."""
    paid = [(o.reservation_id, o.lines) for o in orders if o.reservation_id]
    if not paid:
        return
    session = uow.session
    known = _known_products(session, (line.product_id for _, lines in paid for line in lines))
    new = _record(session, paid, domain.COMMITTED, clock.now(), known)
    sold: Counter[int] = Counter()
    for lines in new.values():
        for product_id, qty in lines:
            sold[product_id] += qty
    if sold:
        _move(uow, sold, allotted=-1, units_sold=+1)


def release(uow: Any, reservation_id: str, paid: bool, items: list[dict] | None) -> dict:
    """``release_stock`` with the order's ``items``: a paid order of the pool, fully refunded
    before the catalog consumed its ``order_paid``, has no reservation yet: it is written as
    returned with those lines and the units go back on sale (``stock += q``, ``allotted -=
    q``); the late ``order_paid`` finds it returned and changes nothing. A reservation that
    exists (or one that the event writes meanwhile): ``stock.release`` as always."""
    if paid and items and find_reservation(uow.session, reservation_id) is None:
        lines = domain.merge_lines(items)
        known = _known_products(uow.session, (p for p, _ in lines))
        new = _record(uow.session, [(reservation_id, items)], domain.RETURNED, clock.now(), known)
        if new:
            back = Counter(dict(new[reservation_id]))
            _move(uow, back, stock=+1, allotted=-1)
            found = find_reservation(uow.session, reservation_id)
            assert found is not None  # just written
            return found
    return release_reservation(uow, reservation_id, paid=paid)


def _known_products(session: Any, ids: Iterable[int]) -> set[int]:
    wanted = set(ids)
    if not wanted:
        return set()
    return set(session.scalars(select(P.c.id).where(P.c.id.in_(wanted))))


def _record(
    session: Any, orders: list[tuple[str, Any]], status: str, now: datetime, known: set[int]
) -> dict[str, list[tuple[int, int]]]:
    """Write each (reservation id, lines) as a reservation in ``status`` unless its id
    exists; the lines of the ones written (lines of unknown products are left out)."""
    by_id: dict[str, list[tuple[int, int]]] = {}
    for reservation_id, lines in orders:
        if reservation_id in by_id:
            continue  # the same order twice in a batch
        items = [line if isinstance(line, dict) else line.model_dump() for line in lines]
        by_id[reservation_id] = [
            (p, q) for p, q in domain.merge_lines(items) if p in known and q > 0
        ]
    rows = [
        {"id": rid, "status": status, "created_at": now, "expires_at": now, "updated_at": now}
        for rid in by_id
    ]
    stmt = _insert_ignore_reservations(session.get_bind().dialect.name)
    written = set(session.execute(stmt, rows).scalars())  # executemany: one INSERT … RETURNING
    new = {rid: lines for rid, lines in by_id.items() if rid in written}
    rows = [
        {"reservation_id": rid, "product_id": p, "quantity": q}
        for rid, lines in new.items()
        for p, q in lines
    ]
    if rows:
        session.execute(insert(RESERVATION_LINES), rows)
    return new


@functools.cache
def _insert_ignore_reservations(dialect: str) -> Any:
    """One statement object per dialect: its values travel as parameters (an executemany
    SQLAlchemy sends as one multi-row INSERT), so it is compiled once — ``.values([...])``
    compiled anew for every batch (12% of the catalog's CPU under the money-path load)."""
    return insert_ignore(RESERVATIONS, dialect).returning(RESERVATIONS.c.id)


@functools.cache
def _moving(signs: tuple[tuple[str, int], ...]) -> Any:
    """``_move``'s UPDATE for one set of (column, sign), built once (quantity and id bound)."""
    qty = bindparam("p_qty", type_=P.c.stock.type)
    moved = {col: P.c[col] + qty if sign > 0 else P.c[col] - qty for col, sign in signs}
    return (
        update(P)
        .where(P.c.id == bindparam("p_id", type_=P.c.id.type))
        .values(moved)
        .returning(SHOWN)
    )


@functools.cache
def _moving_all(signs: tuple[tuple[str, int], ...]) -> Any:
    """(PostgreSQL) ``_move`` for one set of (column, sign) in ONE statement, built once: the
    products' rows locked first, in product-id order — the order every writer of products
    locks in (the pseudo-constant count is a one-time filter, evaluated before the UPDATE
    scans, as in orders' ``stock.QUOTE_AND_TAKE``) — then each moved by its quantity; (id,
    what buyers see) of each. The lock is FOR NO KEY UPDATE, what the UPDATE itself takes:
    FOR UPDATE would also wait for the KEY SHARE locks that another batch's reservation lines
    hold on the same products (their foreign key), taken in the lines' order — a deadlock
    between two batches, seen with two catalog instances under the money-path load."""
    moved = ", ".join(
        f"{col} = {P.name}.{col} {'+' if sign > 0 else '-'} v.qty" for col, sign in signs
    )
    return text(
        f"WITH locked AS (SELECT id FROM {P.name}"
        " WHERE id = ANY(CAST(:ids AS INTEGER[])) ORDER BY id FOR NO KEY UPDATE)"
        f" UPDATE {P.name} SET {moved}"
        " FROM unnest(CAST(:ids AS INTEGER[]), CAST(:qtys AS INTEGER[])) AS v (id, qty)"
        f" WHERE {P.name}.id = v.id AND (SELECT count(*) FROM locked) >= 0"
        f" RETURNING {P.name}.id, {P.name}.stock + {P.name}.allotted AS stock"
    )


def _move(uow: Any, quantities: Counter[int], **signs: int) -> None:
    """Add ``sign * quantity`` to each named column (stock, allotted, units_sold) of every
    product, in product-id order; tell others when what buyers see crosses 0. On PostgreSQL
    one statement for all the products (``_moving_all``), elsewhere one per product."""
    key = tuple(sorted(signs.items()))
    ids = sorted(quantities)
    session = uow.session
    if session.get_bind().dialect.name == "postgresql":
        got = session.execute(
            _moving_all(key), {"ids": ids, "qtys": [quantities[p] for p in ids]}
        ).all()
        shown = {row.id: row.stock for row in got}
    else:
        shown = {}
        for product_id in ids:
            row = session.execute(
                _moving(key), {"p_id": product_id, "p_qty": quantities[product_id]}
            ).first()
            if row is not None:
                shown[product_id] = row.stock
    for product_id in ids:  # in product-id order, as the rows were locked
        if product_id not in shown:
            continue  # no such product
        qty = quantities[product_id]
        shown_change = qty * (signs.get("stock", 0) + signs.get("allotted", 0))
        sold_out = shown_change < 0 and shown[product_id] == 0
        if sold_out or (shown_change > 0 and shown[product_id] == shown_change):  # back in stock
            _emit_stock_change(uow, product_id)


# --- reclaims -------------------------------------------------------------------------------
class ReclaimFirst(Exception):
    """Units of these products are out at orders and no reclaim covering them was recorded
    (they were granted meanwhile): record one (its own transaction) and start again."""

    def __init__(self, product_ids: list[int]):
        super().__init__(f"reclaim products {product_ids} first")
        self.product_ids = product_ids


def reclaim_targets(session: Any, product_ids: list[int]) -> list[int]:
    """Those of ``product_ids`` whose units are out at orders (``domain.reclaim_needed``:
    allotted, or grants not settled): a stock change of them reclaims first."""
    if not product_ids:
        return []
    allotted = set(session.scalars(select(P.c.id).where(P.c.id.in_(product_ids), P.c.allotted > 0)))
    granted = set(
        session.scalars(
            select(GRANTS.c.product_id).where(
                GRANTS.c.product_id.in_(product_ids), GRANTS.c.status == domain.GRANTED
            )
        )
    )
    return sorted(
        p for p in set(product_ids) if domain.reclaim_needed(int(p in allotted), int(p in granted))
    )


def owe(uow: Any, product_ids: list[int]) -> str:
    """Record a reclaim of ``product_ids`` as owed (committed on its own before the call, so a
    call that fails is retried by the timer: no grant escapes); its id."""
    reclaim_id = new_id()
    uow.session.execute(
        insert(RECLAIMS),
        {
            "id": reclaim_id,
            "product_ids": sorted(product_ids),
            "status": domain.OWED,
            "created_at": clock.now(),
            "answer": None,
        },
    )
    return reclaim_id


def reclaim(uow: Any, reclaim_id: str, product_ids: list[int], call: ReclaimCall) -> None:
    """Before a stock change of ``product_ids``, with the reclaim ``reclaim_id`` recorded
    owed: lock them (and every product of their granted grants) in product-id order, ask
    orders for the free pool units and the grants it had not applied (``call``), apply the
    answer (``apply``) and mark the reclaim applied. ``ReclaimFirst`` when units are out at
    orders that the reclaim does not cover (granted meanwhile). A failing call raises
    (ServiceUnavailable): the whole change rolls back and the reclaim stays owed."""
    session = uow.session
    targets = _lock_scope(session, product_ids)
    owed = session.execute(
        select(RECLAIMS.c.product_ids, RECLAIMS.c.status).where(RECLAIMS.c.id == reclaim_id)
    ).one()
    if not targets:  # settled meanwhile: orders holds none of them (its pool is in allotted)
        _mark_applied(session, reclaim_id, None)
        return
    if owed.status != domain.OWED or not set(targets) <= set(owed.product_ids):
        raise ReclaimFirst(targets)
    _call_and_apply(uow, reclaim_id, targets, call)


def nothing_out(session: Any, product_ids: list[int]) -> None:
    """After a stock change that recorded no reclaim (nothing was out at orders when it
    looked), under the row locks the change itself took: ``ReclaimFirst`` when units were
    granted meanwhile (the change rolls back and starts again with a reclaim). The common
    path: no lock, no call beyond the change's own."""
    session.flush()
    targets = reclaim_targets(session, product_ids)
    if targets:
        raise ReclaimFirst(targets)


def lock_products_of(session: Any, product_ids: Iterable[int], reservation_ids: list[str]) -> None:
    """(PostgreSQL) Lock ``product_ids`` and the products of ``reservation_ids``' lines in
    product-id order, in one statement: a transaction that then updates them in two sorted
    passes (pool sales and reservation commits in one ``order_paid`` batch) cannot deadlock
    with a reservation or another batch."""
    if session.get_bind().dialect.name != "postgresql":
        return
    lines = select(RESERVATION_LINES.c.product_id).where(
        RESERVATION_LINES.c.reservation_id.in_(reservation_ids)
    )
    session.execute(
        select(P.c.id)
        .where(P.c.id.in_(sorted(set(product_ids))) | P.c.id.in_(lines))
        .order_by(P.c.id)
        .with_for_update(key_share=True)
    ).all()


def owed_reclaims(session: Any, older_than: datetime, limit: int = 100) -> list[tuple[str, list]]:
    """Reclaims still owed (their call failed) recorded before ``older_than``, oldest first."""
    rows = session.execute(
        select(RECLAIMS.c.id, RECLAIMS.c.product_ids)
        .where(RECLAIMS.c.status == domain.OWED, RECLAIMS.c.created_at <= older_than)
        .order_by(RECLAIMS.c.created_at)
        .limit(limit)
    ).all()
    return [(r.id, list(r.product_ids)) for r in rows]


def retry_reclaim(uow: Any, reclaim_id: str, product_ids: list[int], call: ReclaimCall) -> bool:
    """Call an owed reclaim again (same id: orders answers a repeat as the first) and apply the
    answer, once (the status guard). Always called, even when nothing seems out at orders: the
    first call may have reached orders, whose pool units then exist only in its answer."""
    _lock_scope(uow.session, product_ids)
    return _call_and_apply(uow, reclaim_id, sorted(product_ids), call)


def _lock_scope(session: Any, product_ids: list[int]) -> list[int]:
    """Lock ``product_ids`` and every product sharing a granted grant with them (a revoked
    grant gives back all of its lines), in product-id order (SQLite: one writer, no locks).
    The targets (``reclaim_targets``) as they are under the locks. Raises ``ReclaimFirst``
    when a grant made meanwhile reaches a product that is not locked."""
    scope = _grant_closure(session, product_ids)
    _lock(session, scope)
    again = _grant_closure(session, product_ids)
    if not again <= scope:
        raise ReclaimFirst(reclaim_targets(session, product_ids))
    return reclaim_targets(session, product_ids)


def _grant_closure(session: Any, product_ids: list[int]) -> set[int]:
    grant_ids = _granted_grant_ids(session, product_ids)
    shared = set(
        session.scalars(
            select(GRANTS.c.product_id).where(
                GRANTS.c.grant_id.in_(grant_ids), GRANTS.c.status == domain.GRANTED
            )
        )
    )
    return set(product_ids) | shared


def _lock(session: Any, product_ids: Iterable[int]) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        select(P.c.id)
        .where(P.c.id.in_(sorted(product_ids)))
        .order_by(P.c.id)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE, as the stock UPDATEs take
    ).all()


def _granted_grant_ids(session: Any, product_ids: list[int]) -> list[str]:
    if not product_ids:
        return []
    return sorted(
        set(
            session.scalars(
                select(GRANTS.c.grant_id).where(
                    GRANTS.c.product_id.in_(product_ids), GRANTS.c.status == domain.GRANTED
                )
            )
        )
    )


def _call_and_apply(uow: Any, reclaim_id: str, targets: list[int], call: ReclaimCall) -> bool:
    grant_ids = _granted_grant_ids(uow.session, targets)
    answer = ReclaimOut.model_validate(call(reclaim_id, targets, grant_ids))
    return apply(uow, reclaim_id, targets, grant_ids, answer)


def apply(
    uow: Any, reclaim_id: str, targets: list[int], sent: list[str], answer: ReclaimOut
) -> bool:
    """Apply orders' answer once (False: it was applied already): per product ``stock += units
    + revoked``, ``allotted -= units + revoked`` (``domain.after_reclaim``: a revoked grant's
    units, never applied by orders, come back too); the revoked grants → revoked (every line:
    orders discards the whole late reply), the other sent ones → settled. What buyers see does
    not change (units move between two columns of it)."""
    session = uow.session
    if not _mark_applied(session, reclaim_id, answer.model_dump()):
        return False
    back: Counter[int] = Counter()
    for item in answer.items:
        if item.product_id in targets and item.units > 0:
            back[item.product_id] += item.units
        elif item.units > 0:
            log.error(
                "reclaim %s: orders gave back %d units of product %s, which was not asked",
                reclaim_id,
                item.units,
                item.product_id,
            )
    revoked = sorted(set(answer.revoked))
    if revoked:
        for row in session.execute(
            update(GRANTS)
            .where(GRANTS.c.grant_id.in_(revoked), GRANTS.c.status == domain.GRANTED)
            .values(status=domain.REVOKED)
            .returning(GRANTS.c.product_id, GRANTS.c.quantity)
        ):
            back[row.product_id] += row.quantity
    settled = sorted(set(sent) - set(revoked))
    if settled:
        # only grants made before the reclaim was recorded: a retried reclaim is answered with
        # orders' first answer, which knew nothing of grants made since (they stay granted
        # and are sent again by the next reclaim)
        recorded_at = (
            select(RECLAIMS.c.created_at).where(RECLAIMS.c.id == reclaim_id).scalar_subquery()
        )
        session.execute(
            update(GRANTS)
            .where(
                GRANTS.c.grant_id.in_(settled),
                GRANTS.c.status == domain.GRANTED,
                GRANTS.c.created_at <= recorded_at,
            )
            .values(status=domain.SETTLED)
        )
    if back:
        _move(uow, back, stock=+1, allotted=-1)
    return True


def _mark_applied(session: Any, reclaim_id: str, answer: dict | None) -> bool:
    result = session.execute(
        update(RECLAIMS)
        .where(RECLAIMS.c.id == reclaim_id, RECLAIMS.c.status == domain.OWED)
        .values(status=domain.APPLIED, answer=answer)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1
