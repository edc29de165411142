"""Reads of the shop service and the dicts it answers with, apart from the commands.

Every function takes an open SQLAlchemy session (a read session from ``db.read()``, or the unit
of work's session when a handler answers with the row it just changed) and plain arguments.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from shared import clock
from shared.errors import Gone, NotFound, ValidationFailed
from shared.lru import LRU
from shared.validation import not_found
from shop import domain
from shop.domain import ShopRules
from shop.identity import IdentityCheck, IdentitySubject
from shop.models import CatalogProduct, LevelRecalculation, Member, Selection, Shop


# --- rows ---------------------------------------------------------------------------------------
# Loaders refresh a row already in the session (``populate_existing``): the counters move in
# SQL (conditional UPDATEs), so a row read earlier in the same session may be behind.
def load_shop(session: Session, shop_id: int, lock: bool = False) -> Shop:
    stmt = select(Shop).where(Shop.id == shop_id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    shop = session.scalar(stmt)
    if shop is None:
        raise not_found("shop", shop_id)
    return shop


def load_member(session: Session, member_id: int, lock: bool = False) -> Member:
    member = session.get(Member, member_id, with_for_update=lock or None, populate_existing=True)
    if member is None:
        raise NotFound(f"member {member_id} not found", code="member_not_found")
    return member


# --- members ------------------------------------------------------------------------------------
def member_dict(m: Member, rules: ShopRules) -> dict:
    return {
        "id": m.id,
        "nickname": m.nickname,
        "phone": m.phone,
        "credit_score": m.credit_score,
        "real_name_verified": m.real_name_verified,
        "shop_quota": domain.shop_quota(m.shop_quota, rules),
        "shops_owned": m.shops_owned,
        "created_at": clock.iso(m.created_at),
        "suspended": m.suspended_at is not None,
        "suspension_reason": m.suspension_reason,
    }


def get_member(session: Session, rules: ShopRules, member_id: int) -> dict:
    return member_dict(load_member(session, member_id), rules)


def identity_record(session: Session, identity: IdentityCheck, member_id: int) -> dict:
    """The member's identity record as the identity provider vouches for it (payouts checks
    payee account names against ``real_name``); only services ask, never the public."""
    m = load_member(session, member_id)
    rec = identity.record(
        IdentitySubject(m.id, m.nickname, m.phone, m.real_name_verified, m.real_name)
    )
    return {
        "member_id": rec.member_id,
        "real_name_verified": rec.real_name_verified,
        "real_name": rec.real_name,
    }


def me(session: Session, rules: ShopRules, member_id: int) -> dict:
    """The member's profile, whether they may open a(nother) shop, and their shops."""
    member = load_member(session, member_id)
    shops = session.scalars(
        select(Shop).where(Shop.member_id == member.id).order_by(Shop.created_at, Shop.id)
    )
    out = member_dict(member, rules)
    out["may_open_shop"] = not domain.opening_refusals(
        member.credit_score,
        member.real_name_verified,
        member.shops_owned,
        domain.shop_quota(member.shop_quota, rules),
        rules,
    ) and not domain.suspension_refusal(member.suspended_at is not None)
    out["shops"] = [shop_dict(x, rules) for x in shops.all()]
    return out


# --- shops --------------------------------------------------------------------------------------
def shop_dict(s: Shop, rules: ShopRules) -> dict:
    suspended = domain.is_suspended(s.suspended_at is not None, bool(s.keeper_suspended))
    return {
        "id": s.id,
        "member_id": s.member_id,
        "shop_number": s.shop_number,
        "name": s.name,
        "display_name": s.display_name,
        "description": s.description,
        "logo_url": s.logo_url,
        "status": domain.shown_status(s.status, suspended),
        "suspended": suspended,
        "suspension_reason": s.suspension_reason
        or (domain.KEEPER_SUSPENDED_REASON if s.keeper_suspended else None),
        "level": s.level,
        "level_label": domain.LEVEL_LABELS.get(s.level, s.level),
        "level_bonus_bps": rules.bonus_bps(s.level),
        "selection_count": s.selection_count,
        "created_at": clock.iso(s.created_at),
        "activated_at": clock.iso(s.activated_at),
    }


def get_shop(session: Session, rules: ShopRules, shop_id: int) -> dict:
    return shop_dict(load_shop(session, shop_id), rules)


def _not_a_shop(shop_number: Any) -> NotFound:
    return NotFound(f"shop number {shop_number!r} not found", code="shop_not_found")


def get_shop_by_number(session: Session, rules: ShopRules, shop_number: Any) -> dict:
    if not domain.is_shop_number(shop_number):
        raise _not_a_shop(shop_number)
    shop = session.scalar(select(Shop).where(Shop.shop_number == str(shop_number)))
    if shop is None:
        raise _not_a_shop(shop_number)
    return shop_dict(shop, rules)


def shop_detail(session: Session, rules: ShopRules, actor: dict | None, shop_id: int) -> dict:
    """The keeper's own view: the shop plus every selection with its commission."""
    shop = load_shop(session, shop_id)
    domain.ensure_keeper(actor, shop.member_id, allow_admin=True, shop_id=shop.id)
    out = shop_dict(shop, rules)
    bonus = rules.bonus_bps(shop.level)
    out["selections"] = [
        {
            **_public_product(r),
            "commission_bps": r.commission_bps,
            "level_bonus_bps": bonus,
            "status": r.status,
            "stock": r.stock,
            "selected_at": clock.iso(r.selected_at),
        }
        for r in session.execute(_selection_rows(shop.id)).all()
    ]
    return out


def keeper_contact(session: Session, shop_id: int) -> dict:
    shop = load_shop(session, shop_id)
    member = load_member(session, shop.member_id)
    return {
        "shop_id": shop.id,
        "shop_number": shop.shop_number,
        "display_name": shop.display_name,
        "member_id": member.id,
        "nickname": member.nickname,
        "phone": member.phone,
    }


# --- selections ---------------------------------------------------------------------------------
def selection_dict(shop_id: int, product: CatalogProduct | None, sel: Selection | None) -> dict:
    return {
        "shop_id": shop_id,
        "product_id": product.product_id if product else None,
        "selected": sel is not None,
        "reason": sel.reason if sel else None,
        "available": bool(product.available) if product else False,
        "title": product.title if product else None,
        "price_fen": product.price_fen if product else None,
        "commission_bps": product.commission_bps if product else None,
        "selected_at": clock.iso(sel.selected_at) if sel else None,
    }


def get_selection(session: Session, shop_id: int, product_id: int) -> dict:
    sel = session.get(Selection, (shop_id, product_id))
    out = selection_dict(shop_id, session.get(CatalogProduct, product_id), sel)
    out["product_id"] = product_id
    return out


def carried_products(session: Session, shop_id: int, product_ids: list[int]) -> list[int]:
    """The products among ``product_ids`` the shop has selected."""
    if not product_ids:
        return []
    rows = session.execute(
        select(Selection.product_id).where(
            Selection.shop_id == shop_id, Selection.product_id.in_(product_ids)
        )
    ).scalars()
    return sorted(int(p) for p in rows)


def product_known(session: Session, product_id: int) -> bool:
    """Whether the read model holds this catalog product (from events or an earlier fetch)."""
    return session.get(CatalogProduct, product_id) is not None


# --- the public shop view -----------------------------------------------------------------------
def _selection_rows(shop_id: int, available: bool | None = None) -> Select:
    stmt = (
        select(
            Selection.product_id,
            Selection.reason,
            Selection.selected_at,
            CatalogProduct.title,
            CatalogProduct.price_fen,
            CatalogProduct.image_url,
            CatalogProduct.available,
            CatalogProduct.commission_bps,
            CatalogProduct.status,
            CatalogProduct.stock,
            CatalogProduct.category,
        )
        .join(CatalogProduct, CatalogProduct.product_id == Selection.product_id)
        .where(Selection.shop_id == shop_id)
        .order_by(Selection.selected_at.desc(), Selection.product_id.desc())
    )
    if available is not None:
        stmt = stmt.where(CatalogProduct.available.is_(available))
    return stmt


def _public_product(r: Any) -> dict:
    return {
        "product_id": r.product_id,
        "title": r.title,
        "price_fen": r.price_fen,
        "image_url": r.image_url,
        "category": r.category,
        "reason": r.reason,
        "available": bool(r.available),
    }


# Rendered public views keyed by (database, shop id, view_version, page): a hit costs one
# indexed lookup of the shop row. Every change a view shows bumps the shop's ``view_version`` in
# the same transaction, so a stale rendering is never served, also with several instances.
VIEWS: LRU[tuple, dict] = LRU(maxsize=128)


def public_shop(
    session: Session, rules: ShopRules, shop_number: Any, limit: int, cursor: str | None
) -> dict:
    """What a buyer sees after typing a shop number: the shop, its available products with the
    keeper's reasons (paginated: ``limit``/``cursor``), and — on the first page — the picked
    products that are currently unavailable, flagged ``available: false``. Only active shops
    are public. Served from this service's own read model (no catalog call per product)."""
    if not domain.is_shop_number(shop_number):
        raise _not_a_shop(shop_number)
    limit = max(1, min(int(limit), domain.pick_limit(rules)))
    offset = domain.PageCursor.decode(cursor)
    shop = session.execute(
        select(
            Shop.id,
            Shop.status,
            Shop.view_version,
            Shop.shop_number,
            Shop.display_name,
            Shop.description,
            Shop.logo_url,
            Shop.level,
            Shop.suspended_at,
            Shop.keeper_suspended,
        ).where(Shop.shop_number == str(shop_number))
    ).first()
    if shop is None or shop.status != domain.ACTIVE:
        raise _not_a_shop(shop_number)
    if domain.is_suspended(shop.suspended_at is not None, bool(shop.keeper_suspended)):
        raise Gone(
            domain.SUSPENDED_MESSAGE,
            details={"shop_number": shop.shop_number, "status": domain.SUSPENDED},
            code="shop_suspended",
        )
    key = (str(session.get_bind().engine.url), shop.id, shop.view_version, limit, offset)
    cached = VIEWS.get(key)
    if cached is not None:
        return cached
    rows = session.execute(_selection_rows(shop.id, True).offset(offset).limit(limit + 1)).all()
    unavailable = []
    if offset == 0:
        unavailable = [
            _public_product(r) for r in session.execute(_selection_rows(shop.id, False)).all()
        ]
    view = {
        "shop_number": shop.shop_number,
        "display_name": shop.display_name,
        "description": shop.description,
        "logo_url": shop.logo_url,
        "level": shop.level,
        "level_badge": domain.level_badge(shop.level, rules),
        "products": [_public_product(r) for r in rows[:limit]],
        "unavailable_products": unavailable,
        "next_cursor": domain.PageCursor.encode(offset + limit) if len(rows) > limit else None,
    }
    VIEWS.put(key, view)
    return view


# --- levels -------------------------------------------------------------------------------------
def level_result(rec: LevelRecalculation) -> dict:
    return {
        "month": rec.month,
        "changes": json.loads(rec.changes),
        "shops_considered": rec.shops_considered,
        "recalculated_at": clock.iso(rec.ran_at),
    }


def level_record(session: Session, month: str) -> dict | None:
    """The recorded recalculation of ``month`` (None: not run yet)."""
    rec = session.get(LevelRecalculation, month)
    return level_result(rec) if rec else None


def level_of(session: Session, rules: ShopRules, member_id: int) -> dict:
    """The keeper's current level and bonus (their first shop; a member without a shop is not a
    keeper: ``shop_id`` None, no bonus). The gateway adds ``keeper_earn_fen`` with it."""
    shop = session.scalar(
        select(Shop).where(Shop.member_id == member_id).order_by(Shop.created_at, Shop.id).limit(1)
    )
    if shop is None:
        return {"shop_id": None, "level": None, "bonus_bps": 0}
    return {"shop_id": shop.id, "level": shop.level, "bonus_bps": rules.bonus_bps(shop.level)}


def owned_shop_level(session: Session, actor: dict | None, shop_id: int) -> str:
    """The level of a shop the actor keeps (404 for a missing or another keeper's shop)."""
    shop = load_shop(session, shop_id)
    domain.ensure_keeper(actor, shop.member_id, allow_admin=True, shop_id=shop.id)
    return shop.level


def member_by_phone(session, phone: str) -> dict | None:
    """``{"id"}`` of the member registered with ``phone`` (normalised), or None."""
    try:
        normal = domain.normalize_phone(phone)
    except ValidationFailed:  # not a phone number at all: nobody has it
        return None
    found = session.scalar(select(Member.id).where(Member.phone == normal))
    return None if found is None else {"id": found}
