"""Shops (小铺): opening one (credit, real name, quota, name rules, a random shop number),
editing it, and verifying the keeper's identity, which makes it public."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from shared import clock
from shared.contracts.events import ShopChanged
from shared.contracts.shop import ShopIn, ShopPatch
from shared.errors import RuleViolation, ServiceUnavailable, rule
from shared.fingerprints import Fingerprinter
from shared.ids import unused_int_id
from shop import domain, queries
from shop.domain import ShopRules
from shop.handlers._races import LostRace
from shop.identity import IdentityCheck, IdentitySubject
from shop.models import Member, Shop

log = logging.getLogger(__name__)


def keeper_fingerprints(member: Member, fingerprints: Fingerprinter | None) -> dict[str, Any]:
    """The keeper's fingerprints for shop events (payouts' fraud rules): the registered phone
    (members keep no address)."""
    if fingerprints is None:
        return {}
    return {"keeper_phone_fp": fingerprints.phone(member.phone)}


def shop_changed(s: Shop, **extra: Any) -> ShopChanged:
    return ShopChanged(
        shop_id=s.id,
        member_id=s.member_id,
        shop_number=s.shop_number,
        display_name=s.display_name,
        status=s.status,
        level=s.level,
        **extra,
    )


def _free_shop_number(session, rules: ShopRules) -> str:
    for _attempt in range(max(1, rules.shop_number_attempts)):
        number = domain.new_shop_number()
        if session.scalar(select(Shop.id).where(Shop.shop_number == number)) is None:
            return number
        log.info("shop number %s already taken; drawing another", number)
    raise _numbers_exhausted()


def _numbers_exhausted() -> ServiceUnavailable:
    return ServiceUnavailable(
        "could not allocate a free shop number; try again", code="shop_number_exhausted"
    )


def take_quota_slot(session, member: Member, quota: int) -> bool:
    """One conditional UPDATE (``domain.may_own_another_shop``): two concurrent openings
    cannot both take the last slot."""
    return (
        session.execute(
            update(Member)
            .where(Member.id == member.id, Member.shops_owned < quota)
            .values(shops_owned=Member.shops_owned + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )


def open_shop(
    uow,
    rules: ShopRules,
    member_id: int,
    command: ShopIn,
    fingerprints: Fingerprinter | None = None,
) -> dict:
    name = domain.clean_shop_name(command.name, rules)
    description = domain.clean_description(command.description, rules)
    logo_url = domain.clean_logo_url(command.logo_url, rules)
    session = uow.session
    member = queries.load_member(session, member_id)
    quota = domain.shop_quota(member.shop_quota, rules)
    domain.ensure_may_open(
        member.credit_score,
        member.real_name_verified,
        member.shops_owned,
        quota,
        rules,
        suspended=member.suspended_at is not None,
    )
    if not take_quota_slot(session, member, quota):  # a concurrent opening took it first
        domain.ensure_may_open(member.credit_score, member.real_name_verified, quota, quota, rules)
    shop = Shop(
        id=unused_int_id(session, Shop),
        member_id=member.id,
        shop_number=_free_shop_number(session, rules),
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
    session.add(shop)
    try:
        session.flush()  # the unique constraint on shop_number decides a concurrent tie
    except IntegrityError as exc:
        raise LostRace(_numbers_exhausted()) from exc
    uow.emit("shop_opened", shop_changed(shop, **keeper_fingerprints(member, fingerprints)))
    return queries.shop_dict(shop, rules)


def update_shop(uow, rules: ShopRules, actor: dict, shop_id: int, command: ShopPatch) -> dict:
    """Only the fields present in the request change, under the same rules as opening."""
    fields = command.model_fields_set
    shop = queries.load_shop(uow.session, shop_id, lock=True)
    domain.ensure_keeper(actor, shop.member_id, allow_admin=True, shop_id=shop.id)
    if "name" in fields:
        shop.name = domain.clean_shop_name(command.name, rules)
        shop.display_name = domain.display_name(shop.name, rules)
    if "description" in fields:
        shop.description = domain.clean_description(command.description, rules)
    if "logo_url" in fields:
        shop.logo_url = domain.clean_logo_url(command.logo_url, rules)
    shop.view_version = (shop.view_version or 0) + 1
    uow.session.flush()
    return queries.shop_dict(shop, rules)


def verify_shop(
    uow,
    rules: ShopRules,
    identity: IdentityCheck,
    actor: dict,
    shop_id: int,
    fingerprints: Fingerprinter | None = None,
) -> dict:
    """The sandbox identity check; passing makes the shop active (public). Verifying an active
    shop again answers the same shop."""
    session = uow.session
    shop = queries.load_shop(session, shop_id, lock=True)
    domain.ensure_keeper(actor, shop.member_id, allow_admin=True, shop_id=shop.id)
    if not domain.ensure_can_verify(shop.status):
        return queries.shop_dict(shop, rules)
    member = queries.load_member(session, shop.member_id)
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
    session.flush()
    uow.emit(
        "shop_activated",
        shop_changed(
            shop,
            verification_ref=result.reference,
            **keeper_fingerprints(member, fingerprints),
        ),
    )
    return queries.shop_dict(shop, rules)
