"""Suspension (issue 13) through a fake unit of work: an admin suspends a shop or a keeper with
a recorded reason; the shop shows as suspended, its public view answers 410, events tell share
and payouts, and reinstating undoes exactly what the suspension did."""

import pytest

from shared.contracts.shop import MemberIn, ShopIn
from shared.errors import Gone, RuleViolation
from shared.fingerprints import Fingerprinter
from shared.testing import FakeUnitOfWork
from shop import queries
from shop.domain import ShopRules
from shop.handlers import members, shops, suspensions
from shop.identity import IdentityStanding, SandboxIdentityCheck
from shop.models import Base, Suspension

RULES = ShopRules()
ADMIN = {"role": "admin", "sub": "admin"}
FP = Fingerprinter("test-salt")


@pytest.fixture
def uow():
    return FakeUnitOfWork(Base.metadata)


def active_shop(uow, phone="13800138000", name="阿花的好物") -> dict:
    body = MemberIn(nickname="阿花", phone=phone)
    m = members.register_member(uow, RULES, body, IdentityStanding(750, True))
    shop = shops.open_shop(uow, RULES, m["id"], ShopIn(name=name), FP)
    actor = {"role": "member", "sub": str(m["id"])}
    return shops.verify_shop(uow, RULES, SandboxIdentityCheck(), actor, shop["id"], FP)


def events(uow, kind):
    return [data for event_type, data in uow.events if event_type == kind]


def test_shop_events_carry_the_keepers_phone_fingerprint_not_the_phone(uow):
    active_shop(uow, phone="13800138000")
    for kind in ("shop_opened", "shop_activated"):
        (data,) = events(uow, kind)
        assert data["keeper_phone_fp"] == FP.phone("+86 138 0013 8000")
        assert "13800138000" not in str(data)


def test_a_suspended_shop_is_shown_suspended_and_its_public_view_is_gone(uow):
    shop = active_shop(uow)
    out = suspensions.suspend_shop(uow, RULES, ADMIN, shop["id"], "刷单调查")
    assert (out["status"], out["suspended"], out["suspension_reason"]) == (
        "suspended",
        True,
        "刷单调查",
    )
    (event,) = events(uow, "shop_suspended")
    assert (event["cause"], event["reason"], event["by"]) == ("shop", "刷单调查", "admin:admin")
    with pytest.raises(Gone) as gone:
        queries.public_shop(uow.session, RULES, shop["shop_number"], 10, None)
    assert gone.value.code == "shop_suspended" and "暂停营业" in gone.value.message
    # again: nothing changes, nothing is emitted
    suspensions.suspend_shop(uow, RULES, ADMIN, shop["id"], "再次")
    assert len(events(uow, "shop_suspended")) == 1
    back = suspensions.reinstate_shop(uow, RULES, ADMIN, shop["id"], "调查结束")
    assert (back["status"], back["suspended"]) == ("active", False)
    assert len(events(uow, "shop_reinstated")) == 1
    assert queries.public_shop(uow.session, RULES, shop["shop_number"], 10, None)["products"] == []
    history = uow.session.query(Suspension).order_by(Suspension.id).all()
    assert [(h.subject, h.action, h.reason) for h in history] == [
        ("shop", "suspend", "刷单调查"),
        ("shop", "reinstate", "调查结束"),
    ]


def test_a_suspended_keeper_suspends_their_shops_and_may_not_open_another(uow):
    shop = active_shop(uow)
    member_id = shop["member_id"]
    out = suspensions.suspend_member(uow, RULES, ADMIN, member_id, "冒用他人身份")
    assert out["suspended"] and out["suspension_reason"] == "冒用他人身份"
    assert queries.get_shop(uow.session, RULES, shop["id"])["status"] == "suspended"
    (event,) = events(uow, "shop_suspended")
    assert event["cause"] == "keeper"
    me = queries.me(uow.session, RULES, member_id)
    assert me["may_open_shop"] is False
    with pytest.raises(RuleViolation) as refused:
        shops.open_shop(uow, RULES, member_id, ShopIn(name="第二家店"))
    assert "member_suspended" in [d["rule"] for d in refused.value.details]


def test_reinstating_a_keeper_keeps_a_shop_suspended_on_its_own(uow):
    shop = active_shop(uow)
    suspensions.suspend_shop(uow, RULES, ADMIN, shop["id"], "商品违规")
    suspensions.suspend_member(uow, RULES, ADMIN, shop["member_id"], "身份调查")
    assert events(uow, "shop_suspended") and len(events(uow, "shop_suspended")) == 1
    suspensions.reinstate_member(uow, RULES, ADMIN, shop["member_id"], "身份无误")
    assert queries.get_shop(uow.session, RULES, shop["id"])["status"] == "suspended"
    assert events(uow, "shop_reinstated") == []
    suspensions.reinstate_shop(uow, RULES, ADMIN, shop["id"], "整改完成")
    assert queries.get_shop(uow.session, RULES, shop["id"])["status"] == "active"
    assert len(events(uow, "shop_reinstated")) == 1
