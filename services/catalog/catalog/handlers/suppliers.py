"""Suppliers (供货商): qualify and register, pay the deposit, be suspended and reinstated."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from catalog import domain
from catalog.domain import CatalogRules
from catalog.models import Product, Supplier
from catalog.queries import load_supplier, snapshot, supplier_dict
from shared import clock
from shared.contracts.events import SupplierChanged
from shared.errors import Conflict, RuleViolation
from shared.ids import unused_int_id


def register(uow: Any, r: CatalogRules, data: dict) -> dict:
    """A qualified applicant becomes a supplier: ``active`` at once when no deposit is due,
    ``pending_deposit`` otherwise."""
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
        id=unused_int_id(uow.session, Supplier),
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
        _emit(uow, "supplier_activated", s)
    return supplier_dict(s)


def pay_deposit(uow: Any, supplier_id: int, amount_fen: int) -> dict:
    """Deposits accumulate; the one that meets the requirement activates the supplier."""
    s = load_supplier(uow.session, supplier_id, lock=True)
    if s.status == domain.SUSPENDED:
        raise Conflict("a suspended supplier cannot pay its deposit", code="supplier_suspended")
    before = s.status
    s.status, s.deposit_fen = domain.after_deposit(
        s.status, s.deposit_fen, amount_fen, s.deposit_required_fen
    )
    if before != domain.ACTIVE and s.status == domain.ACTIVE:
        s.activated_at = clock.now()
        _set_products_active(uow, s, True)
        _emit(uow, "supplier_activated", s)
    return supplier_dict(s)


def suspend(uow: Any, supplier_id: int, reason: str | None = None) -> dict:
    """A suspended supplier's products stop being available (they stay listed)."""
    s = load_supplier(uow.session, supplier_id, lock=True)
    if s.status == domain.SUSPENDED:
        return supplier_dict(s)
    s.status = domain.SUSPENDED
    _set_products_active(uow, s, False)
    _emit(uow, "supplier_suspended", s, reason)
    return supplier_dict(s)


def reinstate(uow: Any, supplier_id: int) -> dict:
    """Back to ``active`` when the deposit is paid in full, else to ``pending_deposit``."""
    s = load_supplier(uow.session, supplier_id, lock=True)
    if s.status != domain.SUSPENDED:
        return supplier_dict(s)
    if s.deposit_fen >= s.deposit_required_fen:
        s.status = domain.ACTIVE
        _set_products_active(uow, s, True)
        _emit(uow, "supplier_activated", s)
    else:
        s.status = domain.PENDING_DEPOSIT
    return supplier_dict(s)


def _emit(uow: Any, event_type: str, s: Supplier, reason: str | None = None) -> None:
    uow.emit(
        event_type, SupplierChanged(supplier_id=s.id, name=s.name, status=s.status, reason=reason)
    )


def _set_products_active(uow: Any, s: Supplier, active: bool) -> None:
    """Mirror the supplier's status on its products and tell others which ones flipped."""
    products = (
        uow.session.execute(
            select(Product)
            .where(Product.supplier_id == s.id)
            .order_by(Product.id)  # id order: the lock order reservations use
            .with_for_update()
        )
        .scalars()
        .all()
    )
    for p in products:
        shown = domain.displayed_stock(p.stock, p.allotted)
        was = domain.is_available(p.status, shown, p.supplier_active)
        p.supplier_active = active
        if domain.is_available(p.status, shown, active) != was:
            p.updated_at = clock.now()
            uow.emit("product_changed", snapshot(p))
