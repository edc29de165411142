"""What each shop entrypoint does: validate → unit of work → domain rule → rows + events.

Functions take the worker's ``db`` (``shared.db.DatabaseHandle``), the ``ShopRules`` and plain
arguments; ``service.py`` only wires entrypoints to them. Remote calls (catalog, payouts) are
passed in as callables so no transaction is held open while waiting on another service.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from shared import clock
from shared.contracts.events import ProductSnapshot
from shared.contracts.shop import MemberIn, SelectionIn, ShopIn, ShopPatch, ShopQuotaIn
from shared.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RuleViolation,
    ServiceUnavailable,
    ValidationFailed,
    rule,
)
from shop import domain
from shop.domain import ShopRules
from shop.identity import IdentityCheck, IdentitySubject
from shop.models import CatalogProduct, LevelRecalculation, Member, Selection, Shop

log = logging.getLogger(__name__)


# --- helpers ------------------------------------------------------------------------------------
def validate(model: type[BaseModel], data: Any) -> BaseModel:
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise ValidationFailed("the request is invalid", details=details)


def _int_id(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NotFound(f"{what} {value!r} not found")


def member_dict(m: Member, rules: ShopRules) -> dict:
    return {
        "id": m.id,
        "nickname": m.nickname,
        "phone": m.phone,
        "credit_score": m.credit_score,
        "real_name_verified": m.real_name_verified,
        "shop_quota": m.shop_quota or rules.shops_per_member,
        "shops_owned": m.shops_owned,
        "created_at": clock.iso(m.created_at),
    }


def shop_dict(s: Shop, rules: ShopRules) -> dict:
    return {
        "id": s.id,
        "member_id": s.member_id,
        "shop_number": s.shop_number,
        "name": s.name,
        "display_name": s.display_name,
        "description": s.description,
        "logo_url": s.logo_url,
        "status": s.status,
        "level": s.level,
        "level_label": domain.LEVEL_LABELS.get(s.level, s.level),
        "level_bonus_bps": rules.bonus_bps(s.level),
        "selection_count": s.selection_count,
        "created_at": clock.iso(s.created_at),
        "activated_at": clock.iso(s.activated_at),
    }


def shop_event(s: Shop) -> dict:
    return {
        "shop_id": s.id,
        "member_id": s.member_id,
        "shop_number": s.shop_number,
        "display_name": s.display_name,
        "status": s.status,
        "level": s.level,
    }


def _load_shop(session, shop_id: Any, lock: bool = False) -> Shop:
    sid = _int_id(shop_id, "shop")
    stmt = select(Shop).where(Shop.id == sid)
    if lock:
        stmt = stmt.with_for_update()
    shop = session.scalar(stmt)
    if shop is None:
        raise NotFound(f"shop {shop_id} not found", code="shop_not_found")
    return shop


def _bump_views(session, *shop_ids: int) -> None:
    """The public view of these shops changed: cached renderings of them are now stale."""
    if shop_ids:
        session.execute(
            update(Shop)
            .where(Shop.id.in_(shop_ids))
            .values(view_version=Shop.view_version + 1)
            .execution_options(synchronize_session=False)
        )


def _ensure_owner(shop: Shop, actor: dict | None, allow_admin: bool = False) -> None:
    actor = actor or {}
    role = actor.get("role")
    if role == "admin" and allow_admin:
        return
    if role == "member" and str(actor.get("sub")) == str(shop.member_id):
        return
    raise Forbidden("only the shop's keeper may do this", code="not_shop_owner")


# --- members ------------------------------------------------------------------------------------
class _PhoneTaken(Exception):
    pass


def register_member(db, rules: ShopRules, data: dict) -> dict:
    body = validate(MemberIn, data)
    phone = domain.normalize_phone(body.phone)
    nickname = domain.clean_nickname(body.nickname, rules)
    try:
        with db.unit_of_work() as uow:
            s = uow.session
            if s.scalar(select(Member.id).where(Member.phone == phone)) is not None:
                raise _PhoneTaken()
            member = Member(
                nickname=nickname,
                phone=phone,
                credit_score=body.credit_score,
                real_name_verified=body.real_name_verified,
                shops_owned=0,
                shop_quota=None,
                created_at=clock.now(),
            )
            s.add(member)
            s.flush()
            out = member_dict(member, rules)
    except (IntegrityError, _PhoneTaken):
        raise Conflict(
            "this phone number is already registered",
            code="phone_taken",
            details=[{"field": "phone", "message": "already registered"}],
        )
    return out


def get_member(db, rules: ShopRules, member_id: Any) -> dict:
    with db.read() as s:
        member = s.get(Member, _int_id(member_id, "member"))
        if member is None:
            raise NotFound(f"member {member_id} not found", code="member_not_found")
        return member_dict(member, rules)


def me(db, rules: ShopRules, member_id: Any) -> dict:
    with db.read() as s:
        member = s.get(Member, _int_id(member_id, "member"))
        if member is None:
            raise NotFound(f"member {member_id} not found", code="member_not_found")
        shops = s.scalars(select(Shop).where(Shop.member_id == member.id).order_by(Shop.id)).all()
        out = member_dict(member, rules)
        out["may_open_shop"] = not domain.opening_refusals(
            member.credit_score,
            member.real_name_verified,
            member.shops_owned,
            member.shop_quota or rules.shops_per_member,
            rules,
        )
        out["shops"] = [shop_dict(x, rules) for x in shops]
        return out


def grant_shop_quota(db, rules: ShopRules, member_id: Any, data: dict) -> dict:
    body = validate(ShopQuotaIn, data)
    with db.unit_of_work() as uow:
        member = uow.session.get(Member, _int_id(member_id, "member"), with_for_update=True)
        if member is None:
            raise NotFound(f"member {member_id} not found", code="member_not_found")
        member.shop_quota = body.quota
        uow.session.flush()
        return member_dict(member, rules)


# --- shops --------------------------------------------------------------------------------------
class _NumberTaken(Exception):
    pass


def open_shop(db, rules: ShopRules, member_id: Any, data: dict) -> dict:
    body = validate(ShopIn, data)
    name = domain.clean_shop_name(body.name, rules)
    description = domain.clean_description(body.description, rules)
    logo_url = domain.clean_logo_url(body.logo_url, rules)
    mid = _int_id(member_id, "member")
    for _attempt in range(max(1, rules.shop_number_attempts)):
        number = domain.new_shop_number()
        try:
            with db.unit_of_work() as uow:
                s = uow.session
                member = s.get(Member, mid)
                if member is None:
                    raise NotFound(f"member {member_id} not found", code="member_not_found")
                quota = member.shop_quota or rules.shops_per_member
                domain.ensure_may_open(
                    member.credit_score, member.real_name_verified, member.shops_owned, quota, rules
                )
                # take a quota slot atomically: two concurrent openings cannot both pass
                taken = s.execute(
                    update(Member)
                    .where(Member.id == mid, Member.shops_owned < quota)
                    .values(shops_owned=Member.shops_owned + 1)
                    .execution_options(synchronize_session=False)
                ).rowcount
                if taken != 1:
                    domain.ensure_may_open(
                        member.credit_score, member.real_name_verified, quota, quota, rules
                    )
                if s.scalar(select(Shop.id).where(Shop.shop_number == number)) is not None:
                    raise _NumberTaken()
                shop = Shop(
                    member_id=mid,
                    shop_number=number,
                    name=name,
                    display_name=domain.display_name(name, rules),
                    description=description,
                    logo_url=logo_url,
                    status=domain.PENDING,
                    level="newcomer",
                    level_month=None,
                    selection_count=0,
                    view_version=0,
                    created_at=clock.now(),
                )
                s.add(shop)
                s.flush()  # the unique constraint on shop_number decides a concurrent tie
                uow.emit("shop_opened", shop_event(shop))
                out = shop_dict(shop, rules)
            return out
        except (_NumberTaken, IntegrityError) as exc:
            log.info(
                "shop number %s already taken (%s); drawing another", number, type(exc).__name__
            )
            continue
    raise ServiceUnavailable(
        "could not allocate a free shop number; try again", code="shop_number_exhausted"
    )


def update_shop(db, rules: ShopRules, actor: dict, shop_id: Any, data: dict) -> dict:
    body = validate(ShopPatch, data)
    fields = body.model_fields_set
    with db.unit_of_work() as uow:
        shop = _load_shop(uow.session, shop_id, lock=True)
        _ensure_owner(shop, actor, allow_admin=True)
        if "name" in fields:
            shop.name = domain.clean_shop_name(body.name, rules)
            shop.display_name = domain.display_name(shop.name, rules)
        if "description" in fields:
            shop.description = domain.clean_description(body.description, rules)
        if "logo_url" in fields:
            shop.logo_url = domain.clean_logo_url(body.logo_url, rules)
        shop.view_version = (shop.view_version or 0) + 1
        uow.session.flush()
        return shop_dict(shop, rules)


def verify_shop(db, rules: ShopRules, identity: IdentityCheck, actor: dict, shop_id: Any) -> dict:
    with db.unit_of_work() as uow:
        s = uow.session
        shop = _load_shop(s, shop_id, lock=True)
        _ensure_owner(shop, actor, allow_admin=True)
        if not domain.ensure_can_verify(shop.status):
            return shop_dict(shop, rules)  # already active: verifying again changes nothing
        member = s.get(Member, shop.member_id)
        result = identity.verify(
            IdentitySubject(member.id, member.nickname, member.phone, member.real_name_verified),
            shop.id,
        )
        if not result.passed:
            raise RuleViolation(
                "the shop verification did not pass: " + (result.reason or ""),
                details=[
                    rule(
                        "identity_check_failed",
                        result.reason or "refused",
                        reference=result.reference,
                    )
                ],
            )
        shop.status = domain.ACTIVE
        shop.activated_at = clock.now()
        shop.view_version = (shop.view_version or 0) + 1
        s.flush()
        uow.emit("shop_activated", {**shop_event(shop), "verification_ref": result.reference})
        return shop_dict(shop, rules)


def get_shop(db, rules: ShopRules, shop_id: Any) -> dict:
    with db.read() as s:
        return shop_dict(_load_shop(s, shop_id), rules)


def get_shop_by_number(db, rules: ShopRules, shop_number: Any) -> dict:
    if not domain.is_shop_number(shop_number):
        raise NotFound(f"shop number {shop_number!r} not found", code="shop_not_found")
    with db.read() as s:
        shop = s.scalar(select(Shop).where(Shop.shop_number == str(shop_number)))
        if shop is None:
            raise NotFound(f"shop number {shop_number} not found", code="shop_not_found")
        return shop_dict(shop, rules)


def shop_detail(db, rules: ShopRules, actor: dict, shop_id: Any) -> dict:
    """The keeper's own view: the shop plus every selection with its commission."""
    with db.read() as s:
        shop = _load_shop(s, shop_id)
        _ensure_owner(shop, actor, allow_admin=True)
        out = shop_dict(shop, rules)
        rows = s.execute(_selection_rows(shop.id)).all()
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
            for r in rows
        ]
        return out


def get_keeper_contact(db, rules: ShopRules, shop_id: Any) -> dict:
    with db.read() as s:
        shop = _load_shop(s, shop_id)
        member = s.get(Member, shop.member_id)
        return {
            "shop_id": shop.id,
            "shop_number": shop.shop_number,
            "display_name": shop.display_name,
            "member_id": member.id,
            "nickname": member.nickname,
            "phone": member.phone,
        }


# --- public shop view ---------------------------------------------------------------------------
def _selection_rows(shop_id: int, available: bool | None = None):
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


def _public_product(r) -> dict:
    return {
        "product_id": r.product_id,
        "title": r.title,
        "price_fen": r.price_fen,
        "image_url": r.image_url,
        "category": r.category,
        "reason": r.reason,
        "available": bool(r.available),
    }


class ViewCache:
    """Rendered public views keyed by (shop id, view_version, page): a hit costs one indexed
    lookup of the shop row. Every change a view shows bumps the shop's ``view_version`` in the
    same transaction, so a stale rendering is never served — also with several instances."""

    def __init__(self, size: int = 128):
        self.size = size
        self._data: OrderedDict[tuple, dict] = OrderedDict()

    def get(self, key: tuple) -> dict | None:
        found = self._data.get(key)
        if found is not None:
            self._data.move_to_end(key)
        return found

    def put(self, key: tuple, value: dict) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()


VIEWS = ViewCache()


def _db_key(db) -> str:
    engine = getattr(db, "engine", None)
    return str(getattr(engine, "url", "")) if engine is not None else ""


def public_shop(
    db, rules: ShopRules, shop_number: Any, limit: int = 100, cursor: str | None = None
) -> dict:
    """What a buyer sees after typing a shop number: the shop, its available products with the
    keeper's reasons (paginated: ``limit``/``cursor``), and — on the first page — the picked
    products that are currently unavailable, flagged ``available: false``. Only active shops
    are public. Served from this service's own read model (no catalog call per product)."""
    if not domain.is_shop_number(shop_number):
        raise NotFound(f"shop number {shop_number!r} not found", code="shop_not_found")
    limit = max(1, min(int(limit or 100), rules.max_products_per_shop))
    offset = domain.PageCursor.decode(cursor)
    with db.read() as s:
        shop = s.execute(
            select(
                Shop.id,
                Shop.status,
                Shop.view_version,
                Shop.shop_number,
                Shop.display_name,
                Shop.description,
                Shop.logo_url,
                Shop.level,
            ).where(Shop.shop_number == str(shop_number))
        ).first()
        if shop is None or shop.status != domain.ACTIVE:
            raise NotFound(f"shop number {shop_number} not found", code="shop_not_found")
        key = (_db_key(db), shop.id, shop.view_version, limit, offset)
        cached = VIEWS.get(key)
        if cached is not None:
            return cached
        rows = s.execute(_selection_rows(shop.id, True).offset(offset).limit(limit + 1)).all()
        unavailable = []
        if offset == 0:
            unavailable = [
                _public_product(r) for r in s.execute(_selection_rows(shop.id, False)).all()
            ]
    more = len(rows) > limit
    view = {
        "shop_number": shop.shop_number,
        "display_name": shop.display_name,
        "description": shop.description,
        "logo_url": shop.logo_url,
        "level": shop.level,
        "level_badge": domain.level_badge(shop.level, rules),
        "products": [_public_product(r) for r in rows[:limit]],
        "unavailable_products": unavailable,
        "next_cursor": domain.PageCursor.encode(offset + limit) if more else None,
    }
    VIEWS.put(key, view)
    return view


# --- the catalog read model ---------------------------------------------------------------------
def _product_values(snapshot: ProductSnapshot, version) -> dict:
    return {
        "product_id": snapshot.product_id,
        "supplier_id": snapshot.supplier_id,
        "title": snapshot.title[:300],
        "category": snapshot.category,
        "price_fen": snapshot.price_fen,
        "commission_bps": snapshot.commission_bps,
        "stock": snapshot.stock,
        "status": snapshot.status,
        "available": bool(snapshot.available),
        "image_url": snapshot.image_url,
        "brand": snapshot.brand,
        "occurred_at": version,
    }


def upsert_product(session, values: dict) -> bool:
    """Insert or replace the snapshot unless the stored one occurred later (out-of-order
    events keep the newest). One statement, so concurrent writers cannot interleave."""
    values = {**values, "occurred_at": clock.as_utc(values["occurred_at"]).astimezone(clock.UTC)}
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(CatalogProduct).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[CatalogProduct.product_id],
        set_={k: stmt.excluded[k] for k in values if k != "product_id"},
        where=CatalogProduct.occurred_at <= stmt.excluded.occurred_at,
    )
    applied = session.execute(stmt).rowcount == 1
    if applied:  # every shop showing this product shows something new
        shop_ids = session.scalars(
            select(Shop.id)
            .where(
                Shop.id.in_(
                    select(Selection.shop_id).where(Selection.product_id == values["product_id"])
                )
            )
            .order_by(Shop.id)
            .with_for_update()
        ).all()  # id order: no lock-order deadlocks
        _bump_views(session, *shop_ids)
    return applied


def apply_product_event(db, event: dict, handler: str) -> None:
    snapshot = ProductSnapshot.model_validate(event.get("data") or {})
    occurred = clock.parse(event["occurred_at"]) if event.get("occurred_at") else clock.now()
    with db.unit_of_work() as uow:
        if not uow.claim(event, handler):
            return
        upsert_product(uow.session, _product_values(snapshot, occurred))


def _snapshot_from_rpc(product: dict) -> ProductSnapshot:
    data = dict(product)
    data.setdefault("product_id", data.get("id"))
    return ProductSnapshot.model_validate(data)


def ensure_product(db, product_id: int, fetch: Callable[[int], dict]) -> None:
    """The product must exist in the catalog: known from events, or fetched once."""
    with db.read() as s:
        if s.get(CatalogProduct, product_id) is not None:
            return
    fetched_at = clock.now()
    snapshot = _snapshot_from_rpc(fetch(product_id))
    with db.unit_of_work() as uow:
        upsert_product(uow.session, _product_values(snapshot, fetched_at))


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


def select_product(
    db,
    rules: ShopRules,
    actor: dict,
    shop_id: Any,
    product_id: Any,
    data: dict,
    fetch: Callable[[int], dict],
) -> dict:
    body = validate(SelectionIn, data)
    reason = domain.clean_reason(body.reason, rules)
    pid = _int_id(product_id, "product")
    with db.read() as s:
        _ensure_owner(_load_shop(s, shop_id), actor)
    ensure_product(db, pid, fetch)
    for attempt in range(2):
        try:
            with db.unit_of_work() as uow:
                s = uow.session
                shop = _load_shop(s, shop_id)
                product = s.get(CatalogProduct, pid)
                sel = s.get(Selection, (shop.id, pid))
                if sel is None:
                    if product.status != "listed":
                        raise RuleViolation(
                            "this product is not listed in the catalog",
                            details=[
                                rule(
                                    "product_not_listed",
                                    "only listed products can be picked",
                                    product_id=pid,
                                )
                            ],
                        )
                    # the limit, atomically: the counter only moves while below the maximum
                    moved = s.execute(
                        update(Shop)
                        .where(
                            Shop.id == shop.id, Shop.selection_count < rules.max_products_per_shop
                        )
                        .values(selection_count=Shop.selection_count + 1)
                        .execution_options(synchronize_session=False)
                    ).rowcount
                    if moved != 1:
                        raise domain.selection_limit_reached(rules.max_products_per_shop)
                    sel = Selection(
                        shop_id=shop.id, product_id=pid, reason=reason, selected_at=clock.now()
                    )
                    s.add(sel)
                else:
                    sel.reason = reason
                _bump_views(s, shop.id)
                s.flush()
                uow.emit(
                    "selection_changed",
                    {"shop_id": shop.id, "product_id": pid, "selected": True, "reason": reason},
                )
                return selection_dict(shop.id, product, sel)
        except IntegrityError:
            if attempt:  # the same product picked twice at once: the second becomes an edit
                raise Conflict("the selection changed concurrently; try again")
    raise AssertionError("unreachable")


def unselect_product(db, rules: ShopRules, actor: dict, shop_id: Any, product_id: Any) -> None:
    pid = _int_id(product_id, "product")
    with db.unit_of_work() as uow:
        s = uow.session
        shop = _load_shop(s, shop_id)
        _ensure_owner(shop, actor)
        gone = s.execute(
            delete(Selection)
            .where(Selection.shop_id == shop.id, Selection.product_id == pid)
            .execution_options(synchronize_session=False)
        ).rowcount
        if gone:
            s.execute(
                update(Shop)
                .where(Shop.id == shop.id)
                .values(
                    selection_count=Shop.selection_count - 1, view_version=Shop.view_version + 1
                )
                .execution_options(synchronize_session=False)
            )
            uow.emit(
                "selection_changed",
                {"shop_id": shop.id, "product_id": pid, "selected": False, "reason": None},
            )


def get_selection(db, shop_id: Any, product_id: Any) -> dict:
    sid, pid = _int_id(shop_id, "shop"), _int_id(product_id, "product")
    with db.read() as s:
        sel = s.get(Selection, (sid, pid))
        product = s.get(CatalogProduct, pid)
        out = selection_dict(sid, product, sel)
        out["product_id"] = pid
        return out


# --- levels -------------------------------------------------------------------------------------
def _stored_result(rec: LevelRecalculation) -> dict:
    return {
        "month": rec.month,
        "changes": json.loads(rec.changes),
        "shops_considered": rec.shops_considered,
        "recalculated_at": clock.iso(rec.ran_at),
    }


def level_record(db, month: str) -> dict | None:
    with db.read() as s:
        rec = s.get(LevelRecalculation, month)
        return _stored_result(rec) if rec else None


def recalculate_levels(
    db, rules: ShopRules, month: str, settled_sales: Callable[[str], dict]
) -> dict:
    """Levels from ``month``'s settled sales, once per month: the first run records its changes
    and emits ``level_changed`` for each; every later run returns that record unchanged."""
    domain.parse_month(month)
    domain.ensure_month_closed(month, clock.now())
    done = level_record(db, month)
    if done is not None:
        return {**done, "replayed": True}
    sales = domain.normalize_sales(settled_sales(month))
    try:
        with db.unit_of_work() as uow:
            s = uow.session
            rec = LevelRecalculation(
                month=month, changes="[]", shops_considered=0, ran_at=clock.now()
            )
            s.add(rec)
            s.flush()  # claims the month: a concurrent run waits here, then fails the PK
            shops = s.scalars(select(Shop).order_by(Shop.id).with_for_update()).all()
            states = [domain.ShopLevelState(x.id, x.level, x.level_month) for x in shops]
            changes = domain.level_changes(states, sales, month, rules)
            by_id = {x.id: x for x in shops}
            for ch in changes:
                by_id[ch.shop_id].level = ch.new_level
                by_id[ch.shop_id].view_version = (by_id[ch.shop_id].view_version or 0) + 1
                uow.emit(
                    "level_changed",
                    {
                        "shop_id": ch.shop_id,
                        "month": month,
                        "old_level": ch.old_level,
                        "new_level": ch.new_level,
                        "bonus_bps": ch.bonus_bps,
                    },
                )
            considered = 0
            for x in shops:
                if x.level_month is None or x.level_month <= month:
                    x.level_month = month
                    considered += 1
            rec.changes = json.dumps([c.as_dict() for c in changes])
            rec.shops_considered = considered
            s.flush()
            out = _stored_result(rec)
    except IntegrityError:
        done = level_record(db, month)
        if done is None:
            raise
        return {**done, "replayed": True}
    return {**out, "replayed": False}
