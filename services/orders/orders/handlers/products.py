"""Orders' read model of catalog products (``product_views``): checkout prices from it, so the
money path asks the catalog nothing before it reserves.

Fed by catalog's ``product_listed`` / ``product_changed`` / ``product_delisted`` (each carries
the full snapshot): an upsert in one statement where the newest ``occurred_at`` wins, so a
redelivered or out-of-order event changes nothing (idempotent without an inbox row). A product
no event has brought yet (orders started after it was listed, or a lost event) is fetched once
with ``get_products`` and stored the same way (``refresh``) — that is also how the model is
rebuilt: empty the table and checkouts fill it back on demand.

The view may lag the catalog by one event: the catalog stays the authority. The reservation
re-checks listing, stock and the unit price the order was priced at (409 ``price_changed``
when it moved; orders then refreshes the view so the retry prices right). An order keeps the
price it was placed at: a later change never touches it.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, exists, select
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.orm import Session

from orders.models import CartItem, ProductView
from shared import clock
from shared.contracts.events import ProductSnapshot
from shared.db import dialect_insert

VIEWS = cast(Table, ProductView.__table__)
CART = cast(Table, CartItem.__table__)
COLUMNS = (
    "product_id",
    "supplier_id",
    "title",
    "category",
    "description",
    "brand",
    "image_url",
    "price_fen",
    "commission_bps",
    "available",
)


def _utc(at: datetime) -> datetime:
    return (at if at.tzinfo else at.replace(tzinfo=clock.UTC)).astimezone(clock.UTC)


def values_of(p: dict | ProductSnapshot, occurred_at: datetime) -> dict[str, Any]:
    """A row of the view from an event's snapshot or a ``get_products`` dict."""
    d = p.model_dump() if isinstance(p, ProductSnapshot) else dict(p)
    pid = d["product_id"] if "product_id" in d else d["id"]
    return {
        "product_id": int(pid),
        "supplier_id": int(d["supplier_id"]),
        "title": str(d.get("title") or "")[:500],
        "category": d.get("category"),
        "description": d.get("description"),
        "brand": d.get("brand"),
        "image_url": d.get("image_url"),
        "price_fen": int(d["price_fen"]),
        "commission_bps": int(d.get("commission_bps") or 0),
        "available": bool(d.get("available")),
        "occurred_at": _utc(occurred_at),
    }


def upsert(session: Session, rows: list[dict[str, Any]]) -> int:
    """Store snapshots unless a newer one is stored already; one statement; rows applied."""
    if not rows:
        return 0
    stmt = dialect_insert(VIEWS, session.get_bind().dialect.name).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[VIEWS.c.product_id],
        set_={k: stmt.excluded[k] for k in rows[0] if k != "product_id"},
        where=VIEWS.c.occurred_at <= stmt.excluded.occurred_at,
    )
    result = session.execute(stmt)
    assert isinstance(result, CursorResult)  # an INSERT's result counts its rows
    return int(result.rowcount or 0)


def on_product_event(uow: Any, event: dict, snapshot: ProductSnapshot) -> bool:
    """A catalog product event: True when it is the newest the view has seen."""
    at = event.get("occurred_at")
    occurred = clock.parse(at) if at else clock.real_now()
    return upsert(uow.session, [values_of(snapshot, occurred)]) == 1


def for_checkout(
    session: Session | Connection, buyer_id: int, ids: list[int]
) -> tuple[dict[int, dict], bool]:
    """The products of ``ids`` the view has (as ``get_products`` shapes them) and whether the
    buyer has a cart to clear — one statement, built once (``_checkout_reads``). The checkout's
    read where ``stock.QUOTE_AND_TAKE`` does not run (SQLite); on PostgreSQL that statement
    reads the same columns and takes the stock in the same round trip."""
    with_products, cart_only = _checkout_reads()
    params = {"p_buyer": buyer_id, "p_ids": ids}
    rows = session.execute(with_products, params).all()
    products = {int(r.product_id): shaped(r) for r in rows}
    if rows:
        return products, bool(rows[0].has_cart)
    return products, bool(session.execute(cart_only, params).scalar())


def shaped(row: Any) -> dict:
    """A view row as ``get_products`` shapes a product (its ``COLUMNS``, ``id``)."""
    return {**{c: getattr(row, c) for c in COLUMNS}, "id": int(row.product_id)}


@functools.cache
def _checkout_reads() -> tuple[Select, Select]:
    """``for_checkout``'s two statements with their values as bind parameters. Built on every
    call they would cost a cache-key walk each; one object per process is compiled once and
    its key remembered."""
    buyer = bindparam("p_buyer", type_=CART.c.buyer_id.type)
    has_cart = exists().where(CART.c.buyer_id == buyer).label("has_cart")
    ids = bindparam("p_ids", expanding=True, type_=VIEWS.c.product_id.type)
    with_products = select(*(VIEWS.c[c] for c in COLUMNS), has_cart).where(
        VIEWS.c.product_id.in_(ids)
    )
    return with_products, select(has_cart)


def refresh(uow: Any, catalog_products: list[dict]) -> dict[int, dict]:
    """Store what ``get_products`` answered (as of now: an event that occurs later still wins)
    and return it by id."""
    now = clock.real_now()
    upsert(uow.session, [values_of(p, now) for p in catalog_products])
    return {int(p["id"]): p for p in catalog_products}
