"""What each catalog command does inside one unit of work: load, apply the rule of
``catalog.domain``, change rows, emit the outbox events. ``service.py`` only validates and calls
these; they never commit themselves (the unit of work does)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from catalog import domain
from catalog.domain import CatalogRules
from catalog.images import ImageRejected, check_upload, valid_ref
from catalog.models import Image, Product, Reservation, ReservationLine, Supplier
from shared import clock
from shared.errors import Conflict, Forbidden, NotFound, RuleViolation, ValidationFailed

P = Product.__table__


# --- views ----------------------------------------------------------------------------------
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


def image_url(url: str | None, ref: str | None) -> str | None:
    if url:
        return url
    return f"/api/v1/images/{ref}" if ref else None


def product_dict(p: Any) -> dict:
    """The product as every other service sees it (``p``: a Product or a row with its columns)."""
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
        "stock": p.stock,
        "status": p.status,
        "available": domain.is_available(p.status, p.stock, p.supplier_active),
        "image_url": image_url(p.image_url, p.image_ref),
        "image_ref": p.image_ref,
        "market_commission_bps": p.market_commission_bps,
        "reference_price_fen": p.reference_price_fen,
    }


def snapshot(p: Product) -> dict:
    """``ProductSnapshot`` of shared/contracts/events.py (plus a few added fields)."""
    d = product_dict(p)
    return {
        "product_id": d["id"],
        "supplier_id": d["supplier_id"],
        "title": d["title"],
        "category": d["category"],
        "price_fen": d["price_fen"],
        "commission_bps": d["commission_bps"],
        "commission_fen": d["commission_fen"],
        "stock": d["stock"],
        "status": d["status"],
        "available": d["available"],
        "image_url": d["image_url"],
        "image_ref": d["image_ref"],
        "brand": d["brand"],
        "description": d["description"],
    }


# --- suppliers ------------------------------------------------------------------------------
def register_supplier(uow, r: CatalogRules, data: dict) -> dict:
    problems = domain.qualification_problems(data, r)
    if problems:
        raise RuleViolation(
            "the supplier does not qualify", details=problems, code="supplier_not_qualified"
        )
    now = clock.now()
    required = domain.required_deposit_fen(data.get("categories") or [], r)
    status = domain.ACTIVE if required <= 0 else domain.PENDING_DEPOSIT
    contact = data["contact"]
    s = Supplier(
        name=data["name"],
        registered_capital_fen=data["registered_capital_fen"],
        general_taxpayer=data["general_taxpayer"],
        brand_authorization_levels=data.get("brand_authorization_levels"),
        purchase_records=bool(data.get("purchase_records")),
        categories=",".join(data.get("categories") or []),
        phone=contact["phone"],
        wechat=contact.get("wechat"),
        email=contact.get("email"),
        status=status,
        deposit_required_fen=required,
        deposit_fen=0,
        created_at=now,
        activated_at=now if status == domain.ACTIVE else None,
    )
    uow.session.add(s)
    uow.session.flush()
    if status == domain.ACTIVE:
        _emit_supplier(uow, "supplier_activated", s)
    return supplier_dict(s)


def load_supplier(session, supplier_id: int, lock: bool = False) -> Supplier:
    stmt = select(Supplier).where(Supplier.id == supplier_id)
    if lock:
        stmt = stmt.with_for_update()
    s = session.execute(stmt).scalar_one_or_none()
    if s is None:
        raise NotFound(f"supplier {supplier_id} not found", code="supplier_not_found")
    return s


def _emit_supplier(uow, event_type: str, s: Supplier) -> None:
    uow.emit(event_type, {"supplier_id": s.id, "name": s.name, "status": s.status})


def pay_deposit(uow, supplier_id: int, amount_fen: int) -> dict:
    s = load_supplier(uow.session, supplier_id, lock=True)
    if s.status == domain.SUSPENDED:
        raise Conflict("a suspended supplier cannot pay its deposit", code="supplier_suspended")
    before = s.status
    s.status, s.deposit_fen = domain.after_deposit(
        s.status, s.deposit_fen, amount_fen, s.deposit_required_fen
    )
    if before != domain.ACTIVE and s.status == domain.ACTIVE:
        s.activated_at = clock.now()
        _set_supplier_active(uow, s, True)
        _emit_supplier(uow, "supplier_activated", s)
    return supplier_dict(s)


def _set_supplier_active(uow, s: Supplier, active: bool) -> None:
    """Mirror the supplier's status on its products and tell others which ones flipped."""
    products = (
        uow.session.execute(
            select(Product)
            .where(Product.supplier_id == s.id)
            .order_by(Product.id)
            .with_for_update()
        )
        .scalars()
        .all()
    )  # id order: the lock order reservations use
    for p in products:
        was = domain.is_available(p.status, p.stock, p.supplier_active)
        p.supplier_active = active
        if domain.is_available(p.status, p.stock, active) != was:
            p.updated_at = clock.now()
            uow.emit("product_changed", snapshot(p))


def suspend_supplier(uow, supplier_id: int, reason: str | None = None) -> dict:
    s = load_supplier(uow.session, supplier_id, lock=True)
    if s.status == domain.SUSPENDED:
        return supplier_dict(s)
    s.status = domain.SUSPENDED
    _set_supplier_active(uow, s, False)
    uow.emit(
        "supplier_suspended",
        {"supplier_id": s.id, "name": s.name, "status": s.status, "reason": reason},
    )
    return supplier_dict(s)


def reinstate_supplier(uow, supplier_id: int) -> dict:
    s = load_supplier(uow.session, supplier_id, lock=True)
    if s.status != domain.SUSPENDED:
        return supplier_dict(s)
    if s.deposit_fen >= s.deposit_required_fen:
        s.status = domain.ACTIVE
        _set_supplier_active(uow, s, True)
        _emit_supplier(uow, "supplier_activated", s)
    else:
        s.status = domain.PENDING_DEPOSIT
    return supplier_dict(s)


# --- products -------------------------------------------------------------------------------
def _require_can_list(s: Supplier) -> None:
    if s.status == domain.SUSPENDED:
        raise Forbidden(
            f"supplier {s.id} is suspended and cannot list products", code="supplier_suspended"
        )
    if s.status != domain.ACTIVE:
        raise Conflict(
            f"supplier {s.id} is {s.status}: pay the deposit before listing",
            code="supplier_not_active",
            details={
                "status": s.status,
                "deposit_fen": s.deposit_fen,
                "deposit_required_fen": s.deposit_required_fen,
            },
        )


def _store_image(uow, r: CatalogRules, image_base64: str) -> str:
    try:
        img = check_upload(image_base64, r.image_max_bytes, r.image_max_pixels)
    except ImageRejected as exc:
        raise RuleViolation(
            exc.problem["message"],
            details=[{**exc.problem, "field": "image_base64"}],
            code="image_rejected",
        )
    values = dict(
        ref=img.ref,
        content_type=img.content_type,
        data=img.data,
        width=img.width,
        height=img.height,
        size_bytes=len(img.data),
        created_at=clock.now(),
    )
    dialect = uow.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    uow.session.execute(dialect_insert(Image.__table__).values(**values).on_conflict_do_nothing())
    return img.ref


def create_product(uow, r: CatalogRules, supplier_id: int, data: dict) -> dict:
    s = load_supplier(uow.session, supplier_id)
    _require_can_list(s)
    problems = domain.listing_problems(data, r, s.deposit_fen)
    if problems:
        raise RuleViolation(
            "the listing breaks platform rules", details=problems, code="listing_rejected"
        )
    image_ref = _store_image(uow, r, data["image_base64"]) if data.get("image_base64") else None
    now = clock.now()
    p = Product(
        supplier_id=s.id,
        title=data["title"],
        category=data["category"],
        description=data.get("description"),
        brand=data.get("brand"),
        price_fen=data["price_fen"],
        stock=data["stock"],
        commission_bps=data["commission_bps"],
        market_commission_bps=data["market_commission_bps"],
        reference_price_fen=data["reference_price_fen"],
        image_url=None if image_ref else data.get("image_url"),
        image_ref=image_ref,
        status=domain.LISTED,
        supplier_active=True,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(p)
    uow.session.flush()
    uow.emit("product_listed", snapshot(p))
    return product_dict(p)


def _owned_product(session, product_id: int, supplier_id: int | None) -> Product:
    p = session.execute(
        select(Product).where(Product.id == product_id).with_for_update()
    ).scalar_one_or_none()
    if p is None:
        raise NotFound(f"product {product_id} not found", code="product_not_found")
    if supplier_id is not None and p.supplier_id != supplier_id:
        raise Forbidden(
            f"product {product_id} belongs to another supplier", code="not_your_product"
        )
    return p


EDITABLE = (
    "title",
    "category",
    "description",
    "brand",
    "price_fen",
    "stock",
    "commission_bps",
    "market_commission_bps",
    "reference_price_fen",
    "image_url",
)


def update_product(
    uow, r: CatalogRules, product_id: int, changes: dict, supplier_id: int | None
) -> dict:
    p = _owned_product(uow.session, product_id, supplier_id)
    s = load_supplier(uow.session, p.supplier_id)
    if supplier_id is not None and s.status == domain.SUSPENDED:
        raise Forbidden(f"supplier {s.id} is suspended", code="supplier_suspended")
    merged = {k: getattr(p, k) for k in EDITABLE}
    merged.update({k: v for k, v in changes.items() if k in EDITABLE})
    problems = domain.listing_problems(merged, r, s.deposit_fen)
    if problems:
        raise RuleViolation(
            "the change breaks platform rules", details=problems, code="listing_rejected"
        )
    before = snapshot(p)
    for key in EDITABLE:
        if key in changes:
            setattr(p, key, changes[key])
    if changes.get("image_base64"):
        p.image_ref = _store_image(uow, r, changes["image_base64"])
        p.image_url = None
    elif changes.get("image_url"):
        p.image_ref = None
    after = snapshot(p)
    if domain.snapshot_changed(before, after):
        p.updated_at = clock.now()
        uow.emit("product_changed", after)
    return product_dict(p)


def delist_product(uow, product_id: int, supplier_id: int | None) -> dict:
    p = _owned_product(uow.session, product_id, supplier_id)
    if p.status != domain.DELISTED:
        p.status = domain.DELISTED
        p.updated_at = clock.now()
        uow.emit("product_delisted", snapshot(p))
    return product_dict(p)


def relist_product(uow, product_id: int, supplier_id: int | None) -> dict:
    p = _owned_product(uow.session, product_id, supplier_id)
    if p.status != domain.LISTED:
        _require_can_list(load_supplier(uow.session, p.supplier_id))
        p.status = domain.LISTED
        p.updated_at = clock.now()
        uow.emit("product_listed", snapshot(p))
    return product_dict(p)


# --- reading --------------------------------------------------------------------------------
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
    P.c.status,
    P.c.supplier_active,
    P.c.image_url,
    P.c.image_ref,
    P.c.market_commission_bps,
    P.c.reference_price_fen,
)


def browse(
    session, r: CatalogRules, category: str | None, q: str | None, limit: int, cursor: str | None
) -> dict:
    """Listed, in-stock products of active suppliers, newest first, keyset-paged."""
    try:
        after_id = domain.decode_cursor(cursor)
    except ValueError:
        raise ValidationFailed(
            "the cursor is malformed", details=[{"field": "cursor", "message": "malformed cursor"}]
        )
    if category and category not in r.categories:
        raise ValidationFailed(
            f"unknown category {category!r}",
            details=[{"field": "category", "message": f"known: {', '.join(r.categories)}"}],
        )
    conds = [P.c.status == domain.LISTED, P.c.supplier_active.is_(True), P.c.stock > 0]
    if category:
        conds.append(P.c.category == category)
    if after_id is not None:
        conds.append(P.c.id < after_id)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conds.append(
            or_(P.c.title.ilike(pattern, escape="\\"), P.c.brand.ilike(pattern, escape="\\"))
        )
    rows = session.execute(
        select(*BROWSE_COLUMNS).where(and_(*conds)).order_by(P.c.id.desc()).limit(limit + 1)
    ).all()
    items = [product_dict(row) for row in rows[:limit]]
    next_cursor = domain.encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}


def get_products(session, ids: list[int]) -> list[dict]:
    if not ids:
        return []
    rows = session.execute(select(*BROWSE_COLUMNS).where(P.c.id.in_(set(ids)))).all()
    by_id = {row.id: product_dict(row) for row in rows}
    return [by_id[i] for i in ids if i in by_id]


def get_image(session, ref: str) -> Image:
    img = session.get(Image, ref) if valid_ref(ref) else None
    if img is None:
        raise NotFound(f"image {ref} not found", code="image_not_found")
    return img


# --- stock ----------------------------------------------------------------------------------
def _take(uow, lines: list[tuple[int, int]]) -> list[dict]:
    """Take every line's quantity with a conditional UPDATE (``stock >= qty``): the row lock it
    takes serialises racing reservations, and a line that does not fit changes nothing. Returns
    the short lines (empty: all taken). Emits product_changed when a product sells out."""
    short = []
    for product_id, qty in lines:
        row = uow.session.execute(
            update(P)
            .where(
                P.c.id == product_id,
                P.c.stock >= qty,
                P.c.status == domain.LISTED,
                P.c.supplier_active.is_(True),
            )
            .values(stock=P.c.stock - qty)
            .returning(P.c.stock)
        ).first()
        if row is None:
            current = uow.session.execute(
                select(P.c.stock, P.c.status, P.c.supplier_active).where(P.c.id == product_id)
            ).first()
            if current is None:
                reason, available = "not_found", 0
            elif not (current.status == domain.LISTED and current.supplier_active):
                reason, available = "unavailable", 0
            else:
                reason, available = "insufficient_stock", current.stock
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


def _give_back(uow, lines: list[tuple[int, int]]) -> None:
    for product_id, qty in lines:
        row = uow.session.execute(
            update(P).where(P.c.id == product_id).values(stock=P.c.stock + qty).returning(P.c.stock)
        ).first()
        if row is not None and row.stock == qty:  # it was sold out and is back in stock
            _emit_stock_change(uow, product_id)


def _emit_stock_change(uow, product_id: int) -> None:
    p = uow.session.execute(
        select(Product).where(Product.id == product_id).execution_options(populate_existing=True)
    ).scalar_one()
    if p.status == domain.LISTED and p.supplier_active:
        uow.emit("product_changed", snapshot(p))


def reservation_dict(res: Reservation, lines: list[tuple[int, int]]) -> dict:
    return {
        "reservation_id": res.id,
        "status": res.status,
        "items": [{"product_id": pid, "quantity": q} for pid, q in lines],
        "created_at": clock.iso(res.created_at),
    }


def _lines(session, reservation_id: str) -> list[tuple[int, int]]:
    rows = session.execute(
        select(ReservationLine.product_id, ReservationLine.quantity)
        .where(ReservationLine.reservation_id == reservation_id)
        .order_by(ReservationLine.product_id)
    ).all()
    return [(r.product_id, r.quantity) for r in rows]


def find_reservation(session, reservation_id: str) -> dict | None:
    res = session.get(Reservation, reservation_id)
    return None if res is None else reservation_dict(res, _lines(session, reservation_id))


def reserve(uow, reservation_id: str, items: list[dict]) -> dict:
    existing = find_reservation(uow.session, reservation_id)
    if existing is not None:
        return existing  # idempotent: the first call's outcome
    now = clock.now()
    lines = domain.merge_lines(items)
    res = Reservation(id=reservation_id, status=domain.HELD, created_at=now, updated_at=now)
    uow.session.add(res)
    uow.session.flush()  # a racing call with the same id fails here (IntegrityError)
    short = _take(uow, lines)
    if short:
        raise Conflict(
            "not enough stock for every line; nothing was reserved",
            details=short,
            code="insufficient_stock",
        )
    uow.session.execute(
        insert(ReservationLine.__table__),
        [{"reservation_id": reservation_id, "product_id": pid, "quantity": q} for pid, q in lines],
    )
    return reservation_dict(res, lines)


def _transition(session, reservation_id: str, from_status: str, to_status: str) -> bool:
    """Move a reservation between states; False when someone else already moved it."""
    return (
        session.execute(
            update(Reservation.__table__)
            .where(Reservation.id == reservation_id, Reservation.status == from_status)
            .values(status=to_status, updated_at=clock.now())
        ).rowcount
        == 1
    )


def release(uow, reservation_id: str) -> dict:
    """Give the stock back: a hold that is cancelled or expires, or paid stock whose order was
    fully refunded before shipping (committed → returned). Each happens at most once."""
    if _transition(uow.session, reservation_id, domain.HELD, domain.RELEASED):
        _give_back(uow, _lines(uow.session, reservation_id))
    elif _transition(uow.session, reservation_id, domain.COMMITTED, domain.RETURNED):
        _give_back(uow, _lines(uow.session, reservation_id))
    found = find_reservation(uow.session, reservation_id)
    if found is None:  # never reserved (e.g. the reservation itself failed): nothing to do
        return {"reservation_id": reservation_id, "status": "unknown", "items": []}
    return found


def commit(uow, reservation_id: str) -> dict:
    if _transition(uow.session, reservation_id, domain.HELD, domain.COMMITTED):
        return find_reservation(uow.session, reservation_id)
    found = find_reservation(uow.session, reservation_id)
    if found is None:
        raise NotFound(f"reservation {reservation_id} not found", code="reservation_not_found")
    if found["status"] == domain.RELEASED:
        # paid after the hold expired: take the stock again if it is still there
        if _transition(uow.session, reservation_id, domain.RELEASED, domain.COMMITTED):
            lines = _lines(uow.session, reservation_id)
            short = _take(uow, lines)
            if short:
                raise Conflict(
                    "the reservation expired and the stock is gone",
                    details=short,
                    code="reservation_expired",
                )
            return find_reservation(uow.session, reservation_id)
    return found


def expired_reservation_ids(session, r: CatalogRules, limit: int = 200) -> list[str]:
    cutoff = domain.hold_cutoff(clock.now(), r)
    return list(
        session.execute(
            select(Reservation.id)
            .where(Reservation.status == domain.HELD, Reservation.created_at <= cutoff)
            .order_by(Reservation.created_at)
            .limit(limit)
        ).scalars()
    )


def is_duplicate_key(exc: IntegrityError) -> bool:
    text = str(exc.orig).lower()
    return "unique" in text or "duplicate" in text or "primary key" in text
