"""Fraud rules and suspension holds (issue 13) through a fake unit of work: a held commission
is not settled until an admin clears it; a forfeited one goes to the supplier and the books
stay balanced; a suspended shop's accruals are held and released on reinstatement."""

from datetime import UTC, datetime, timedelta

import pytest

from payouts import domain, queries
from payouts.domain import PayoutRules
from payouts.handlers import accrual, fraud, settlement
from payouts.handlers import paid as paid_handler
from payouts.models import Base
from shared.contracts.events import (
    LevelChanged,
    OrderPaid,
    OrderRefunded,
    OrderStateChanged,
    ShopChanged,
    ShopSuspension,
)
from shared.errors import Conflict
from shared.fingerprints import Fingerprinter
from shared.testing import FakeUnitOfWork

RULES = PayoutRules()
T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
SHOP, SUPPLIER, KEEPER, BUYER = 11, 77, 501, 9
FP = Fingerprinter("test-salt")
KEEPER_PHONE = "13912345678"
KEEPER_ADDRESS = "杭州市西湖区文三路 1 号"


@pytest.fixture
def uow():
    return FakeUnitOfWork(Base.metadata)


def paid(order_id, buyer=BUYER, phone="13800000000", address="上海市某路 9 号", at=T0, **kw):
    return OrderPaid(
        order_id=order_id,
        buyer_id=buyer,
        supplier_id=SUPPLIER,
        shop_id=kw.get("shop_id", SHOP),
        share_id=None,
        self_referral=False,
        keeper_member_id=KEEPER,
        paid_fen=10000,
        lines=[
            {
                "product_id": 1,
                "title": "茶",
                "quantity": 1,
                "unit_price_fen": 10000,
                "amount_fen": 10000,
                "commission_bps": 1000,
            }
        ],
        paid_at=at.isoformat(),
        buyer_phone_fp=FP.phone(phone),
        buyer_address_fp=FP.address(address),
        buyer_visitor_fp=FP.visitor(kw.get("visitor")),
    )


def general_path(uow, rules, event):
    accrual.order_paid(uow, rules, event)
    return fraud.order_paid(uow, rules, event)


# the service takes order_paid through handlers.paid (an order's first event in few
# statements); accrual.order_paid + fraud.order_paid is its general path: both must hold alike
PATHS = {"handlers.paid": paid_handler.order_paid, "accrual+fraud": general_path}
_path = [PATHS["handlers.paid"]]


@pytest.fixture(autouse=True, params=sorted(PATHS))
def order_paid_path(request):
    """Every test here runs through both ways of taking order_paid."""
    _path[0] = PATHS[request.param]
    yield request.param
    _path[0] = PATHS["handlers.paid"]


def pay(uow, event, rules=RULES):
    return _path[0](uow, rules, event)


def keeper_opened_shop(uow):
    shop = ShopChanged(
        shop_id=SHOP,
        member_id=KEEPER,
        shop_number="123456",
        display_name="阿花小铺",
        status="pending_verification",
        level="newcomer",
        keeper_phone_fp=FP.phone(KEEPER_PHONE),
    )
    fraud.keeper_profile(uow, shop, T0 - timedelta(days=30))


def completed(uow, order_id):
    settlement.order_completed(
        uow,
        OrderStateChanged(
            order_id=order_id,
            supplier_id=SUPPLIER,
            shop_id=SHOP,
            status="completed",
            at=(T0 + timedelta(days=20)).isoformat(),
        ),
    )


def reasons(uow, status="open"):
    return sorted(h["reason"] for h in queries.holds(uow.session, status, None, 100)["holds"])


def hold_id(uow):
    return queries.holds(uow.session, "open", None, 100)["holds"][0]["id"]


def settle(uow):
    return settlement.run(uow, RULES, T0 + timedelta(days=30))


def test_a_buyer_with_the_keepers_phone_and_address_has_the_commission_held(uow):
    keeper_opened_shop(uow)
    # the keeper once bought something with their own address: payouts knows it (fingerprint)
    pay(uow, paid(1, buyer=KEEPER, phone=KEEPER_PHONE, address=KEEPER_ADDRESS, shop_id=None))
    # a second account, same phone and address written differently, buys through the shop
    opened = pay(uow, paid(2, phone="+86 139-1234-5678", address="杭州市西湖区文三路1号"))
    assert len(opened) == 2
    assert reasons(uow) == ["fraud:same_address", "fraud:same_phone"]
    completed(uow, 2)
    assert settle(uow)["count"] == 0  # a held accrual is not settleable


def test_a_stranger_is_not_held(uow):
    keeper_opened_shop(uow)
    assert pay(uow, paid(3)) == []
    completed(uow, 3)
    assert settle(uow)["count"] == 1


def test_rules_are_configuration(uow):
    keeper_opened_shop(uow)
    only_address = PayoutRules(fraud_rules=("same_address",))
    assert pay(uow, paid(4, phone=KEEPER_PHONE), only_address) == []


def test_clearing_lets_the_order_settle_normally(uow):
    keeper_opened_shop(uow)
    pay(uow, paid(5, phone=KEEPER_PHONE))
    completed(uow, 5)
    answer = fraud.decide(uow, hold_id(uow), domain.CLEARED, "admin:admin", "家人代买，核实无误")
    assert answer["hold"]["decision"] == "cleared"
    assert answer["hold"]["decided_by"] == "admin:admin"
    assert answer["hold"]["decision_reason"] == "家人代买，核实无误"
    result = settle(uow)
    assert result["count"] == 1 and result["total_fen"] == 1000
    assert queries.earnings(uow.session, SHOP)["settleable_fen"] == 1000
    # the same decision again answers the same outcome; the other decision is refused
    again = fraud.decide(uow, answer["hold"]["id"], domain.CLEARED, "admin:admin", "重复")
    assert again["closed"] == [] and again["hold"]["decision_reason"] == "家人代买，核实无误"
    with pytest.raises(Conflict):
        fraud.decide(uow, answer["hold"]["id"], domain.FORFEITED, "admin:admin", "改主意")


def test_forfeiting_pays_the_keeper_nothing_and_keeps_the_books_balanced(uow):
    keeper_opened_shop(uow)
    pay(uow, paid(6, phone=KEEPER_PHONE))
    accrual.order_refunded(
        uow,
        RULES,
        OrderRefunded(
            order_id=6,
            refund_id=1,
            supplier_id=SUPPLIER,
            shop_id=SHOP,
            amount_fen=2000,
            paid_fen=10000,
            refunded_total_fen=2000,
            at=(T0 + timedelta(days=1)).isoformat(),
        ),
    )
    answer = fraud.decide(uow, hold_id(uow), domain.FORFEITED, "admin:admin", "自买自卖")
    assert answer["forfeited_fen"] == 800  # 1000 commission − 200 already reversed
    assert answer["hold"]["commission_forfeited"] is True
    completed(uow, 6)
    assert settle(uow)["count"] == 1  # settles, earning nothing
    earnings = queries.earnings(uow.session, SHOP)
    assert (earnings["pending_fen"], earnings["settleable_fen"]) == (0, 0)
    books = queries.check_books(uow.session)
    assert books["balanced"] and books["accounts"]["supplier_payable"] == 8000
    # a later level change does not give the forfeited commission back
    level = LevelChanged(
        shop_id=SHOP, month="2026-09", old_level="newcomer", new_level="super", bonus_bps=200
    )
    accrual.level_changed(uow, RULES, level, T0 - timedelta(days=1))
    assert queries.earnings(uow.session, SHOP)["settleable_fen"] == 0
    assert queries.check_books(uow.session)["balanced"]
    assert queries.settled_sales(uow.session, "2026-10") == {}  # no level credit either


def test_velocity_holds_the_order_over_the_limit(uow):
    rules = PayoutRules(fraud_velocity_max_orders=2, fraud_velocity_window_seconds=3600)
    keeper_opened_shop(uow)
    for n in range(2):
        assert pay(uow, paid(10 + n, at=T0 + timedelta(minutes=n)), rules) == []
    pay(uow, paid(12, at=T0 + timedelta(minutes=2), buyer=99), rules)  # same phone, new account
    assert reasons(uow) == ["fraud:velocity"]
    later = T0 + timedelta(hours=3)  # outside the window: counted afresh
    assert pay(uow, paid(13, at=later), rules) == []


def test_a_suspended_shop_has_its_accruals_held_until_reinstated(uow):
    pay(uow, paid(20))
    suspension = ShopSuspension(
        shop_id=SHOP,
        member_id=KEEPER,
        shop_number="123456",
        suspended=True,
        cause="shop",
        reason="刷单调查",
        by="admin:admin",
        at=T0.isoformat(),
    )
    assert fraud.shop_suspension(uow, suspension, T0 + timedelta(hours=1)) == 1
    pay(uow, paid(21, at=T0 + timedelta(hours=2)))  # a new one is held too
    assert reasons(uow) == ["suspended", "suspended"]
    completed(uow, 20)
    completed(uow, 21)
    assert settle(uow)["count"] == 0
    # an older event arriving late changes nothing
    assert fraud.shop_suspension(uow, suspension, T0) == 0
    reinstated = suspension.model_copy(update={"suspended": False, "reason": "调查结束"})
    assert fraud.shop_suspension(uow, reinstated, T0 + timedelta(hours=3)) == 2
    assert reasons(uow) == []
    closed = queries.holds(uow.session, "closed", SHOP, 100)["holds"]
    assert {(h["decision"], h["decision_reason"]) for h in closed} == {("released", "调查结束")}
    assert settle(uow)["count"] == 2
