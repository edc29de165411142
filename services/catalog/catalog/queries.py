"""The catalog's reads and serialisers, apart from its commands (``catalog.handlers``).

Reads take a SQLAlchemy ``Session`` (or, for the hot single-statement reads ``browse`` and
``get_products``, a plain autocommit ``Connection``); the dict builders are what every other
service sees of a supplier, a product, an image or a stock reservation.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from catalog import domain
from catalog.domain import CatalogRules
from catalog.images import valid_ref
from catalog.models import Image, Product, Reservation, ReservationLine, Supplier
from shared import clock
from shared.contracts.events import ProductSnapshot
from shared.errors import NotFound, ValidationFailed

P = Product.__table__


# --- suppliers ------------------------------------------------------------------------------
def supplier_dict(s: Supplier) -> dict:
    return {
        "id": s.id,
        "name": s.name,
        "status": s.status,
        "registered_capital_fen": s.registered_capital_fen,
        "general_taxpayer": s.general_taxpayer,
        "brand_authorization_levels": s.brand_authorization_levels,
        "purchase_records": s.purchase_records,
        "categories": [c for c in (s.categories or "").split(",") if c],
        "contact": {"phone": s.phone, "wechat": s.wechat, "email": s.email},
        "deposit_fen": s.deposit_fen,
        "deposit_required_fen": s.deposit_required_fen,
        "created_at": clock.iso(s.created_at),
        "activated_at": clock.iso(s.activated_at),
    }


def contact_dict(s: Supplier) -> dict:
    return {
        "supplier_id": s.id,
        "name": s.name,
        "phone": s.phone,
        "wechat": s.wechat,
        "email": s.email,
    }


def supplier_by_phone(session: Session, phone: str) -> dict | None:
    digits = "".join(ch for ch in phone if ch.isdigit())
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if not digits:
        return None
    row = session.execute(
        select(Supplier.id, Supplier.status)
        .where(Supplier.phone.in_({digits, phone.strip()}))
        .order_by(Supplier.created_at, Supplier.id)
        .limit(1)
    ).first()
    return None if row is None else {"id": row.id, "status": row.status}


def load_supplier(session: Session, supplier_id: int, lock: bool = False) -> Supplier:
    stmt = select(Supplier).where(Supplier.id == supplier_id)
    if lock:
        stmt = stmt.with_for_update()
    s = session.execute(stmt).scalar_one_or_none()
    if s is None:
        raise NotFound(f"supplier {supplier_id} not found", code="supplier_not_found")
    return s


def get_supplier(session: Session, supplier_id: int) -> dict:
    return supplier_dict(load_supplier(session, supplier_id))


def get_supplier_contact(session: Session, supplier_id: int) -> dict:
    return contact_dict(load_supplier(session, supplier_id))


# --- products -------------------------------------------------------------------------------
def image_url(url: str | None, ref: str | None) -> str | None:
    if url:
        return url
    return f"/api/v1/images/{ref}" if ref else None


def gallery_urls(p: Any) -> list[str]:
    """The product's images in order, the cover first (``images``; the single image when the
    supplier never set a gallery)."""
    if p.images:
        return [u for u in (image_url(e.get("url"), e.get("ref")) for e in p.images) if u]
    cover = image_url(p.image_url, p.image_ref)
    return [cover] if cover else []


def product_dict(p: Any) -> dict:
    """The product as every other service sees it (``p``: a Product or a row with its columns).
    Its ``stock`` is what buyers can buy: the catalog's own plus the units in orders' pool
    (``domain.displayed_stock``); orders' read model takes it as an upper bound."""
    shown = domain.displayed_stock(p.stock, p.allotted)
    return {
        "id": p.id,
        "supplier_id": p.supplier_id,
        "title": p.title,
        "category": p.category,
        "description": p.description,
        "brand": p.brand,
        "price_fen": p.price_fen,
        "commission_bps": p.commission_bps,
        "commission_fen": domain.commission_fen(p.price_fen, p.commission_bps),
        "stock": shown,
        "status": p.status,
        "available": domain.is_available(p.status, shown, p.supplier_active),
        "image_url": image_url(p.image_url, p.image_ref),
        "image_ref": p.image_ref,
        "market_commission_bps": p.market_commission_bps,
        "reference_price_fen": p.reference_price_fen,
        "faq": p.faq or [],
        "specs": p.specs or {},
        "after_sales_policy": p.after_sales_policy,
        "images": gallery_urls(p),
        "units_sold": p.units_sold or 0,
    }


def snapshot(p: Product) -> ProductSnapshot:
    """The ``product_listed``/``product_changed``/``product_delisted`` event of ``p``."""
    d = product_dict(p)
    return ProductSnapshot(
        product_id=d["id"],
        supplier_id=d["supplier_id"],
        title=d["title"],
        category=d["category"],
        price_fen=d["price_fen"],
        commission_bps=d["commission_bps"],
        commission_fen=d["commission_fen"],
        stock=d["stock"],
        status=d["status"],
        available=d["available"],
        image_url=d["image_url"],
        image_ref=d["image_ref"],
        brand=d["brand"],
        description=d["description"],
        faq=d["faq"],
        specs=d["specs"],
        after_sales_policy=d["after_sales_policy"],
    )


BROWSE_COLUMNS = (
    P.c.id,
    P.c.supplier_id,
    P.c.title,
    P.c.category,
    P.c.description,
    P.c.brand,
    P.c.price_fen,
    P.c.commission_bps,
    P.c.stock,
    P.c.allotted,
    P.c.status,
    P.c.supplier_active,
    P.c.image_url,
    P.c.image_ref,
    P.c.market_commission_bps,
    P.c.reference_price_fen,
    P.c.faq,
    P.c.specs,
    P.c.after_sales_policy,
    P.c.units_sold,
    P.c.images,
)

SORT_COLUMNS: dict[str, Any] = {
    "newest": None,
    "commission": P.c.price_fen * P.c.commission_bps,  # domain.sort_key("commission", ...)
    "sales": P.c.units_sold,  # domain.sort_key("sales", ...)
}


def browse(
    conn: Connection | Session,
    r: CatalogRules,
    category: str | None,
    q: str | None,
    limit: int,
    cursor: str | None,
    sort: str = "newest",
) -> dict:
    """Listed, in-stock products of active suppliers in the ``sort`` order (``domain.SORTS``:
    newest first, highest commission first, most sold first), keyset-paged."""
    problem = domain.sort_problem(sort)
    if problem:
        raise ValidationFailed(problem["message"], details=[problem])
    try:
        after = domain.decode_sorted_cursor(cursor, sort)
    except ValueError as exc:
        raise ValidationFailed(
            "the cursor is malformed", details=[{"field": "cursor", "message": "malformed cursor"}]
        ) from exc
    if category and category not in r.categories:
        raise ValidationFailed(
            f"unknown category {category!r}",
            details=[{"field": "category", "message": f"known: {', '.join(r.categories)}"}],
        )
    # in stock: domain.displayed_stock (the catalog's own units and those in orders' pool)
    in_stock = P.c.stock + P.c.allotted > 0
    conds = [P.c.status == domain.LISTED, P.c.supplier_active.is_(True), in_stock]
    if category:
        conds.append(P.c.category == category)
    key_col = SORT_COLUMNS[sort]
    if after is not None:
        after_key, after_id = after
        if key_col is None:
            conds.append(P.c.id < after_id)
        else:
            conds.append(or_(key_col < after_key, and_(key_col == after_key, P.c.id < after_id)))
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conds.append(
            or_(P.c.title.ilike(pattern, escape="\\"), P.c.brand.ilike(pattern, escape="\\"))
        )
    order = [P.c.id.desc()] if key_col is None else [key_col.desc(), P.c.id.desc()]
    rows = conn.execute(
        select(*BROWSE_COLUMNS).where(and_(*conds)).order_by(*order).limit(limit + 1)
    ).all()
    items = [product_dict(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        key = domain.sort_key(sort, last.price_fen, last.commission_bps, last.units_sold or 0)
        next_cursor = domain.encode_cursor(last.id, sort, key)
    return {"items": items, "next_cursor": next_cursor, "sort": sort}


def get_products(conn: Connection | Session, ids: list[int]) -> list[dict]:
    """The products of ``ids`` in that order (unknown ids are left out)."""
    if not ids:
        return []
    rows = conn.execute(select(*BROWSE_COLUMNS).where(P.c.id.in_(set(ids)))).all()
    by_id = {row.id: product_dict(row) for row in rows}
    return [by_id[i] for i in ids if i in by_id]


# --- images ---------------------------------------------------------------------------------
def load_image(session: Session, ref: str) -> Image:
    img = session.get(Image, ref) if valid_ref(ref) else None
    if img is None:
        raise NotFound(f"image {ref} not found", code="image_not_found")
    return img


def get_image(session: Session, ref: str) -> dict:
    img = load_image(session, ref)
    return {
        "image_ref": img.ref,
        "content_type": img.content_type,
        "data_b64": base64.b64encode(img.data).decode("ascii"),
        "width": img.width,
        "height": img.height,
    }


# --- stock reservations ---------------------------------------------------------------------
def reservation_dict(res: Any, lines: list[tuple[int, int]]) -> dict:
    """``res``: a Reservation, or anything with its id, status, created_at and expires_at."""
    return {
        "reservation_id": res.id,
        "status": res.status,
        "items": [{"product_id": pid, "quantity": q} for pid, q in lines],
        "created_at": clock.iso(res.created_at),
        "expires_at": clock.iso(res.expires_at),
    }


def reservation_lines(session: Session, reservation_id: str) -> list[tuple[int, int]]:
    rows = session.execute(
        select(ReservationLine.product_id, ReservationLine.quantity)
        .where(ReservationLine.reservation_id == reservation_id)
        .order_by(ReservationLine.product_id)
    ).all()
    return [(r.product_id, r.quantity) for r in rows]


R = cast(Table, Reservation.__table__)
RL = cast(Table, ReservationLine.__table__)
FIND_RESERVATION = (
    select(R.c.id, R.c.status, R.c.created_at, R.c.expires_at, RL.c.product_id, RL.c.quantity)
    .select_from(R.outerjoin(RL, RL.c.reservation_id == R.c.id))
    .where(R.c.id == bindparam("reservation_id"))
    .order_by(RL.c.product_id)
)


def find_reservation(session: Session, reservation_id: str) -> dict | None:
    """The reservation with its lines, in one read; None when there is none by that id."""
    rows = session.execute(FIND_RESERVATION, {"reservation_id": reservation_id}).all()
    if not rows:
        return None
    lines = [(r.product_id, r.quantity) for r in rows if r.product_id is not None]
    return reservation_dict(rows[0], lines)


def expired_reservation_ids(session: Session, now: datetime, limit: int = 200) -> list[str]:
    """Held reservations whose ``expires_at`` has come (``domain.reservation_expired``)."""
    return list(
        session.execute(
            select(Reservation.id)
            .where(Reservation.status == domain.HELD, Reservation.expires_at <= now)
            .order_by(Reservation.expires_at)
            .limit(limit)
        ).scalars()
    )
