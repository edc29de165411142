"""Products: list one (with its image), change it, delist and relist it."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, select

from catalog import domain
from catalog.domain import CatalogRules
from catalog.images import ImageRejected, check_upload
from catalog.models import Image, Product, Supplier
from catalog.queries import load_supplier, product_dict, snapshot
from shared import clock
from shared.db import insert_or_ignore
from shared.errors import Conflict, Forbidden, NotFound, RuleViolation

IMAGES = cast(Table, Image.__table__)
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


def create(uow: Any, r: CatalogRules, supplier_id: int, data: dict) -> dict:
    """An active supplier lists a product that keeps every listing rule."""
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


def update(
    uow: Any, r: CatalogRules, product_id: int, changes: dict, supplier_id: int | None
) -> dict:
    """A change that keeps every listing rule; ``product_changed`` when others would see it.
    ``supplier_id`` None: an admin edit."""
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
    before = snapshot(p).model_dump()
    for key in EDITABLE:
        if key in changes:
            setattr(p, key, changes[key])
    if changes.get("image_base64"):
        p.image_ref = _store_image(uow, r, changes["image_base64"])
        p.image_url = None
    elif changes.get("image_url"):
        p.image_ref = None
    if p.images and (changes.get("image_base64") or changes.get("image_url")):
        # the single image is the gallery's cover: replace the first photo, keep the rest
        cover = {"ref": p.image_ref} if p.image_ref else {"url": p.image_url}
        p.images = [cover, *p.images[1:]]
    after = snapshot(p)
    if domain.snapshot_changed(before, after.model_dump()):
        p.updated_at = clock.now()
        uow.emit("product_changed", after)
    return product_dict(p)


def delist(uow: Any, product_id: int, supplier_id: int | None) -> dict:
    p = _owned_product(uow.session, product_id, supplier_id)
    if p.status != domain.DELISTED:
        p.status = domain.DELISTED
        p.updated_at = clock.now()
        uow.emit("product_delisted", snapshot(p))
    return product_dict(p)


def relist(uow: Any, product_id: int, supplier_id: int | None) -> dict:
    p = _owned_product(uow.session, product_id, supplier_id)
    if p.status != domain.LISTED:
        _require_can_list(load_supplier(uow.session, p.supplier_id))
        p.status = domain.LISTED
        p.updated_at = clock.now()
        uow.emit("product_listed", snapshot(p))
    return product_dict(p)


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


def _owned_product(session: Any, product_id: int, supplier_id: int | None) -> Product:
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


def _store_image(uow: Any, r: CatalogRules, image_base64: str) -> str:
    """Store an uploaded image once per content hash; its ref."""
    try:
        img = check_upload(image_base64, r.image_max_bytes, r.image_max_pixels)
    except ImageRejected as exc:
        raise RuleViolation(
            exc.problem["message"],
            details=[{**exc.problem, "field": "image_base64"}],
            code="image_rejected",
        ) from exc
    values = dict(
        ref=img.ref,
        content_type=img.content_type,
        data=img.data,
        width=img.width,
        height=img.height,
        size_bytes=len(img.data),
        created_at=clock.now(),
    )
    uow.session.execute(insert_or_ignore(IMAGES, uow.session.get_bind().dialect.name), values)
    return img.ref
