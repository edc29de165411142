"""Members (会员): registering one, and an admin granting a larger shop quota."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from shared import clock
from shared.contracts.shop import MemberIn, ShopQuotaIn
from shared.errors import Conflict
from shared.ids import unused_int_id
from shop import domain, queries
from shop.domain import ShopRules
from shop.identity import IdentityStanding
from shop.models import Member


def _phone_taken() -> Conflict:
    return Conflict(
        "this phone number is already registered",
        code="phone_taken",
        details=[{"field": "phone", "message": "already registered"}],
    )


def register_member(uow, rules: ShopRules, command: MemberIn, record: IdentityStanding) -> dict:
    """A new member; credit score and real-name status come from the identity ``record``
    (the identity adapter), never from what the client declared."""
    phone = domain.normalize_phone(command.phone)
    nickname = domain.clean_nickname(command.nickname, rules)
    session = uow.session
    if session.scalar(select(Member.id).where(Member.phone == phone)) is not None:
        raise _phone_taken()
    member = Member(
        id=unused_int_id(session, Member),  # a sequence would tell how many members there are
        nickname=nickname,
        phone=phone,
        credit_score=record.credit_score,
        real_name_verified=record.real_name_verified,
        real_name=record.real_name,
        shops_owned=0,
        shop_quota=None,
        created_at=clock.now(),
    )
    session.add(member)
    try:
        session.flush()  # the unique phone decides a concurrent registration
    except IntegrityError as exc:
        raise _phone_taken() from exc
    return queries.member_dict(member, rules)


def grant_shop_quota(uow, rules: ShopRules, member_id: int, command: ShopQuotaIn) -> dict:
    member = queries.load_member(uow.session, member_id, lock=True)
    member.shop_quota = command.quota
    uow.session.flush()
    return queries.member_dict(member, rules)
