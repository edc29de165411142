"""One hold mechanism (decisions.md "Money holds"): fraud, suspension and refund_open holds are
rows of the same table, placed and released through ``handlers.holds``; an order settles only
when every one of them is released, and every open one is shown with its reason."""

from datetime import timedelta

import pytest

# the world of the fraud tests (same shop, keeper, buyer, salt and events), not a copy of it
from test_payouts_fraud_handlers import (
    KEEPER_PHONE,
    RULES,
    SHOP,
    SUPPLIER,
    T0,
    completed,
    keeper_opened_shop,
    order_paid_path,  # noqa: F401  (autouse: these tests too run through both order_paid paths)
    paid,
    pay,
)

from payouts import domain, queries
from payouts.handlers import fraud, holds, refunds, settlement, withdrawals
from payouts.models import Base
from shared.contracts.events import (
    RefundDecided,
    RefundRequested,
)
from shared.errors import Conflict
from shared.testing import FakeUnitOfWork


@pytest.fixture
def uow():
    return FakeUnitOfWork(Base.metadata)


def refund_asked(order_id, refund_id=5, days=1):
    return RefundRequested(
        order_id=order_id,
        refund_id=refund_id,
        supplier_id=SUPPLIER,
        shop_id=SHOP,
        amount_fen=3000,
        at=(T0 + timedelta(days=days)).isoformat(),
    )


def refund_rejected(order_id, refund_id=5, days=2):
    return RefundDecided(
        order_id=order_id,
        refund_id=refund_id,
        supplier_id=SUPPLIER,
        shop_id=SHOP,
        decision="rejected",
        amount_fen=3000,
        at=(T0 + timedelta(days=days)).isoformat(),
    )


def settle(uow, days=30):
    return settlement.run(uow, RULES, T0 + timedelta(days=days))


def admin_holds(uow, status="open"):
    return queries.holds(uow.session, status, None, 100)["holds"]


def test_fraud_and_refund_holds_are_one_mechanism_and_the_order_settles_when_all_are_released(
    uow,
):
    keeper_opened_shop(uow)
    assert len(pay(uow, paid(1, phone=KEEPER_PHONE))) == 1  # fraud:same_phone
    assert refunds.refund_requested(uow, refund_asked(1)) is True
    # one table: the admin's list and the keeper's earnings line show both, with their reasons
    listed = sorted((h["reason"], h["ref"], h["shop_id"]) for h in admin_holds(uow))
    assert listed == [("fraud:same_phone", None, SHOP), ("refund_open", "5", SHOP)]
    line = queries.earnings(uow.session, SHOP)["lines"][0]
    assert line["status"] == "held"
    assert [h["reason"] for h in line["holds"]] == ["fraud:same_phone", "refund_open"]
    assert line["holds"][1]["detail"] == {"refund_id": 5, "amount_fen": 3000}
    assert {"held: fraud:same_phone", "held: refund_open"} <= set(line["notes"])
    completed(uow, 1)
    # a refund_open hold is the supplier's decision, not the admin's
    refund_hold = next(h for h in admin_holds(uow) if h["reason"] == domain.REFUND_OPEN)
    with pytest.raises(Conflict) as refused:
        fraud.decide(uow, refund_hold["id"], domain.CLEARED, "admin:admin", "不是风控的事")
    assert refused.value.code == "hold_not_decidable"
    # the admin clears the fraud review: the open refund still keeps the order pending
    fraud_hold = next(h for h in admin_holds(uow) if h["reason"] == "fraud:same_phone")
    answer = fraud.decide(uow, fraud_hold["id"], domain.CLEARED, "admin:admin", "核实无误")
    assert answer["closed"] == [fraud_hold["id"]]
    assert settle(uow)["count"] == 0
    # the supplier rejects the refund: nothing holds the order any more, it settles
    assert refunds.refund_decided(uow, refund_rejected(1)) == 1
    assert holds.open_holds(uow.session, [1]) == {}
    assert settle(uow, days=31)["count"] == 1
    history = [(h["reason"], h["decision"]) for h in holds.history(uow.session, 1)]
    assert history == [("fraud:same_phone", "cleared"), ("refund_open", "rejected")]


def test_forfeiting_closes_the_commission_holds_but_not_an_open_refund(uow):
    keeper_opened_shop(uow)
    pay(uow, paid(2, phone=KEEPER_PHONE))
    refunds.refund_requested(uow, refund_asked(2))
    fraud_hold = next(h for h in admin_holds(uow) if h["reason"] == "fraud:same_phone")
    answer = fraud.decide(uow, fraud_hold["id"], domain.FORFEITED, "admin:admin", "自买自卖")
    assert answer["forfeited_fen"] == 1000
    assert [h["reason"] for h in admin_holds(uow)] == [domain.REFUND_OPEN]
    completed(uow, 2)
    assert settle(uow)["count"] == 0  # the refund still waits for the supplier


def test_a_settled_order_held_afterwards_cannot_be_withdrawn_either(uow):
    pay(uow, paid(3))
    completed(uow, 3)
    assert settle(uow)["count"] == 1
    assert withdrawals.available_fen(uow, SHOP) == 1000
    refunds.refund_requested(uow, refund_asked(3, days=25))
    assert withdrawals.available_fen(uow, SHOP) == 0  # held back, like a payout run does
    refunds.refund_decided(uow, refund_rejected(3, days=26))
    assert withdrawals.available_fen(uow, SHOP) == 1000
