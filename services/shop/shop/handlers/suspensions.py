"""Suspension (issue 13): an admin suspends or reinstates a shop, or a keeper (a member and so
every shop they own), with a recorded reason.

A shop is suspended while it or its keeper is (``domain.is_suspended``). Each decision that
changes something adds a ``suspensions`` row (the history) and, for every shop whose state
turns, emits ``shop_suspended`` or ``shop_reinstated`` (``ShopSuspension``): share shows the
shop's shares unavailable, payouts holds its commissions. Repeating a decision changes nothing
and emits nothing (the answer is the current state), so a retried request is harmless.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from shared import clock
from shared.contracts.events import ShopSuspension
from shop import domain, queries
from shop.domain import ShopRules
from shop.models import Member, Shop, Suspension


def _by(actor: dict) -> str:
    return f"{actor.get('role')}:{actor.get('sub')}"


def _record(uow, subject: str, subject_id: int, action: str, reason: str, by: str, at) -> None:
    uow.session.add(
        Suspension(
            subject=subject,
            subject_id=subject_id,
            action=action,
            reason=reason,
            decided_by=by,
            decided_at=at,
        )
    )


def _apply(uow, shop: Shop, cause: str, reason: str, by: str, at: datetime, change) -> None:
    """Apply ``change`` to ``shop``; emit the event when the shop's suspension turned."""
    before = domain.is_suspended(shop.suspended_at is not None, shop.keeper_suspended)
    change(shop)
    after = domain.is_suspended(shop.suspended_at is not None, shop.keeper_suspended)
    if before == after:
        return
    shop.view_version = (shop.view_version or 0) + 1
    uow.emit(
        "shop_suspended" if after else "shop_reinstated",
        ShopSuspension(
            shop_id=shop.id,
            member_id=shop.member_id,
            shop_number=shop.shop_number,
            suspended=after,
            cause="shop" if cause == "shop" else "keeper",
            reason=reason,
            by=by,
            at=clock.iso(at) or "",
        ),
    )


def suspend_shop(uow, rules: ShopRules, actor: dict, shop_id: int, reason: str) -> dict:
    shop = queries.load_shop(uow.session, shop_id, lock=True)
    if shop.suspended_at is None:
        now, by = clock.now(), _by(actor)

        def change(s: Shop) -> None:
            s.suspended_at, s.suspension_reason = now, reason

        _apply(uow, shop, "shop", reason, by, now, change)
        _record(uow, "shop", shop.id, "suspend", reason, by, now)
        uow.session.flush()
    return queries.shop_dict(shop, rules)


def reinstate_shop(uow, rules: ShopRules, actor: dict, shop_id: int, reason: str) -> dict:
    """Lift the shop's own suspension (a suspended keeper keeps it suspended)."""
    shop = queries.load_shop(uow.session, shop_id, lock=True)
    if shop.suspended_at is not None:
        now, by = clock.now(), _by(actor)

        def change(s: Shop) -> None:
            s.suspended_at, s.suspension_reason = None, None

        _apply(uow, shop, "shop", reason, by, now, change)
        _record(uow, "shop", shop.id, "reinstate", reason, by, now)
        uow.session.flush()
    return queries.shop_dict(shop, rules)


def _keeper_shops(uow, member_id: int) -> list[Shop]:
    return list(
        uow.session.scalars(
            select(Shop).where(Shop.member_id == member_id).order_by(Shop.id).with_for_update()
        )
    )


def suspend_member(uow, rules: ShopRules, actor: dict, member_id: int, reason: str) -> dict:
    """Suspend a keeper: every shop they own is suspended with them."""
    return _set_member(uow, rules, actor, member_id, reason, suspended=True)


def reinstate_member(uow, rules: ShopRules, actor: dict, member_id: int, reason: str) -> dict:
    """Reinstate a keeper: their shops sell again, except those suspended on their own."""
    return _set_member(uow, rules, actor, member_id, reason, suspended=False)


def _set_member(
    uow, rules: ShopRules, actor: dict, member_id: int, reason: str, suspended: bool
) -> dict:
    member: Member = queries.load_member(uow.session, member_id, lock=True)
    if (member.suspended_at is not None) != suspended:
        now, by = clock.now(), _by(actor)
        member.suspended_at = now if suspended else None
        member.suspension_reason = reason if suspended else None

        def change(s: Shop) -> None:
            s.keeper_suspended = suspended

        for shop in _keeper_shops(uow, member.id):
            _apply(uow, shop, "keeper", reason, by, now, change)
        _record(uow, "member", member.id, "suspend" if suspended else "reinstate", reason, by, now)
        uow.session.flush()
    return queries.member_dict(member, rules)
