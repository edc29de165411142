"""The payouts handlers through a fake unit of work (shared.testing.FakeUnitOfWork: a real
session on in-memory SQLite, events recorded): accrual, refunds, the settlement window, payout
runs. The same handlers run on PostgreSQL in tests/integration/test_payouts_ledger.py."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from payouts import domain, queries
from payouts.domain import PayoutRules
from payouts.handlers import accrual, payout_runs, settlement
from payouts.models import Base, Payout
from payouts.provider import TransferResult
from shared.contracts.events import (
    CommissionSettled,
    LevelChanged,
    OrderPaid,
    OrderRefunded,
    OrderStateChanged,
    PayoutPaid,
)
from shared.testing import FakeUnitOfWork

RULES = PayoutRules()
T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
SHOP, SUPPLIER = 11, 77


@pytest.fixture
def uow():
    return FakeUnitOfWork(Base.metadata)


def paid(order_id, amount=10000, bps=1000, shop_id=SHOP, self_referral=False, at=T0):
    return OrderPaid(
        order_id=order_id,
        buyer_id=9,
        supplier_id=SUPPLIER,
        shop_id=shop_id,
        share_id=None,
        self_referral=self_referral,
        paid_fen=amount,
        lines=[
            {
                "product_id": 1,
                "title": "茶",
                "quantity": 1,
                "unit_price_fen": amount,
                "amount_fen": amount,
                "commission_bps": bps,
            }
        ],
        paid_at=at.isoformat(),
    )


def refunded(order_id, total, paid_fen=10000):
    return OrderRefunded(
        order_id=order_id,
        refund_id=1,
        supplier_id=SUPPLIER,
        shop_id=SHOP,
        amount_fen=total,
        paid_fen=paid_fen,
        refunded_total_fen=total,
        at=(T0 + timedelta(hours=1)).isoformat(),
    )


def received(order_id, at, after_sales_until):
    return OrderStateChanged(
        order_id=order_id,
        supplier_id=SUPPLIER,
        shop_id=SHOP,
        status="received",
        at=at.isoformat(),
        after_sales_until=after_sales_until.isoformat() if after_sales_until else None,
    )


def completed(order_id, at):
    return OrderStateChanged(
        order_id=order_id, supplier_id=SUPPLIER, shop_id=SHOP, status="completed", at=at.isoformat()
    )


def keeper(uow, shop_id=SHOP):
    return queries.balances(uow.session, queries.KEEPER_ACCOUNTS, shop_id)


class Provider:
    """A payout provider that pays everyone and remembers what it was asked."""

    def __init__(self):
        self.calls = []

    def transfer(self, key, party_kind, party_id, amount_fen):
        self.calls.append((key, party_kind, party_id, amount_fen))
        return TransferResult(f"ref-{key}")


def payout_run(uow, rules=RULES, suppliers=False):
    provider = Provider()
    opened = payout_runs.open_run(uow, rules, suppliers=suppliers)
    results = payout_runs.transfer_all(provider, opened["payouts"], rules.payout_attempts_per_run)
    return payout_runs.finish_run(uow, opened["run_id"], results), provider


# --- accrual ---------------------------------------------------------------------------------
def test_an_order_paid_accrues_pending_commission_and_the_supplier_payable(uow):
    assert accrual.order_paid(uow, RULES, paid(1, 10000, 1000)) is True
    assert keeper(uow) == {domain.PENDING: 1000, domain.SETTLEABLE: 0, domain.KEEPER_PAID: 0}
    payable = queries.balances(uow.session, [domain.SUPPLIER_PAYABLE], SUPPLIER)
    assert payable == {domain.SUPPLIER_PAYABLE: 9000}
    assert accrual.order_paid(uow, RULES, paid(1, 10000, 1000)) is False  # redelivered
    assert keeper(uow)[domain.PENDING] == 1000
    assert queries.check_books(uow.session)["balanced"]
    assert uow.committed is False  # the entrypoint's unit of work commits, never a handler


def test_the_bonus_is_the_one_shop_sent_in_force_when_the_order_was_paid(uow):
    accrual.order_paid(uow, RULES, paid(1, 10000, 1000, at=T0 - timedelta(days=1)))
    change = LevelChanged(
        shop_id=SHOP, month="2026-09", old_level="newcomer", new_level="elite", bonus_bps=130
    )
    accrual.level_changed(uow, RULES, change, T0 - timedelta(hours=1))
    accrual.order_paid(uow, RULES, paid(2, 10000, 1000))
    lines = {ln["order_id"]: ln for ln in queries.earnings(uow.session, SHOP)["lines"]}
    assert (lines[1]["bonus_bps"], lines[1]["commission_fen"]) == (0, 1000)  # a newcomer then
    assert (lines[2]["bonus_bps"], lines[2]["commission_fen"]) == (130, 1130)  # shop's 130 bps


def test_a_refund_reverses_the_refunded_share_of_the_commission(uow):
    accrual.order_paid(uow, RULES, paid(1, 10000, 1000))
    assert accrual.order_refunded(uow, RULES, refunded(1, 4000)) is True
    assert keeper(uow)[domain.PENDING] == 600
    assert accrual.order_refunded(uow, RULES, refunded(1, 4000)) is False  # a duplicate
    assert accrual.order_refunded(uow, RULES, refunded(1, 10000)) is True
    assert keeper(uow)[domain.PENDING] == 0
    assert queries.balances(uow.session, [domain.SUPPLIER_PAYABLE], SUPPLIER) == {
        domain.SUPPLIER_PAYABLE: 0
    }
    assert queries.check_books(uow.session)["balanced"]


def test_a_refund_before_its_payment_is_applied_when_the_payment_arrives(uow):
    assert accrual.order_refunded(uow, RULES, refunded(1, 5000)) is False
    accrual.order_paid(uow, RULES, paid(1, 10000, 1000))
    assert keeper(uow)[domain.PENDING] == 500


# --- settlement ------------------------------------------------------------------------------
def test_an_order_settles_once_its_after_sales_window_closed_and_not_before(uow):
    # received at T0, orders' window closes at T0 + 7 days (orders' rule, not ours): a run a
    # second before that settles nothing, a run at that instant settles it
    until = T0 + timedelta(days=7)
    accrual.order_paid(uow, RULES, paid(1, 10000, 1000))
    settlement.order_received(uow, received(1, T0, until))
    before = settlement.run(uow, RULES, until - timedelta(seconds=1))
    assert (before["count"], before["settled"]) == (0, [])
    assert keeper(uow)[domain.SETTLEABLE] == 0
    out = settlement.run(uow, RULES, until)
    assert [o["order_id"] for o in out["settled"]] == [1] and out["total_fen"] == 1000
    assert keeper(uow) == {domain.PENDING: 0, domain.SETTLEABLE: 1000, domain.KEEPER_PAID: 0}
    assert settlement.run(uow, RULES, until + timedelta(days=30))["count"] == 0  # once


def test_a_receipt_without_the_window_waits_for_order_completed(uow):
    # an old order_received without after_sales_until: orders sends order_completed when the
    # window closes, and that is the settle signal
    accrual.order_paid(uow, RULES, paid(1, 10000, 1000))
    settlement.order_received(uow, received(1, T0, None))
    assert settlement.run(uow, RULES, T0 + timedelta(days=365))["count"] == 0
    settlement.order_completed(uow, completed(1, T0 + timedelta(days=15)))
    assert settlement.run(uow, RULES, T0 + timedelta(days=15))["count"] == 1


def test_settlement_writes_a_commission_settled_event_per_order_by_its_contract(uow):
    accrual.order_paid(uow, RULES, paid(1, 10000, 1000))
    accrual.order_refunded(uow, RULES, refunded(1, 4000))
    settlement.order_completed(uow, completed(1, T0 + timedelta(days=1)))
    settlement.run(uow, RULES, T0 + timedelta(days=1))
    outbox = Base.metadata.tables["outbox"]
    rows = uow.session.execute(select(outbox.c.event_type, outbox.c.payload)).all()
    assert [t for t, _ in rows] == ["commission_settled"]
    env = json.loads(rows[0].payload)
    data = CommissionSettled.model_validate(env["data"])
    assert (data.order_id, data.shop_id, data.amount_fen, data.sales_fen) == (1, SHOP, 600, 6000)
    assert env["type"] == "commission_settled" and env["source"] == "payouts" and env["id"]


def test_the_timer_settles_only_when_the_interval_has_passed(uow):
    rules = PayoutRules(settlement_interval_seconds=3600)
    assert settlement.run_if_due(uow, rules, T0) is not None
    assert settlement.run_if_due(uow, rules, T0 + timedelta(minutes=59)) is None
    assert settlement.run_if_due(uow, rules, T0 + timedelta(hours=1)) is not None


# --- payout runs -----------------------------------------------------------------------------
def settled_commission(uow, order_id, amount):
    accrual.order_paid(uow, RULES, paid(order_id, amount, 1000))
    settlement.order_completed(uow, completed(order_id, T0))
    settlement.run(uow, RULES, T0)


def test_a_payout_run_does_not_pay_a_balance_below_the_minimum(uow):
    settled_commission(uow, 1, 9990)  # 999 fen settleable: one fen short of 1,000
    run, provider = payout_run(uow)
    assert run["payouts"] == [] and run["total_fen"] == 0 and provider.calls == []
    assert uow.session.execute(select(Payout)).first() is None
    assert keeper(uow)[domain.SETTLEABLE] == 999
    assert uow.events == []


def test_a_payout_run_pays_the_settleable_balance_once_and_emits_payout_paid(uow):
    settled_commission(uow, 1, 10000)
    run, provider = payout_run(uow)
    assert [(p["shop_id"], p["amount_fen"], p["status"]) for p in run["payouts"]] == [
        (SHOP, 1000, "paid")
    ]
    assert [(kind, party, fen) for _, kind, party, fen in provider.calls] == [
        (domain.KEEPER, SHOP, 1000)
    ]
    assert keeper(uow) == {domain.PENDING: 0, domain.SETTLEABLE: 0, domain.KEEPER_PAID: 1000}
    payout_id = run["payouts"][0]["payout_id"]
    assert uow.events == [
        (
            "payout_paid",
            PayoutPaid(
                payout_id=payout_id, shop_id=SHOP, amount_fen=1000, run_id=run["run_id"]
            ).model_dump(mode="json"),
        )
    ]
    again, provider = payout_run(uow)
    assert again["payouts"] == [] and provider.calls == []
    assert queries.check_books(uow.session)["balanced"]


def test_a_custom_minimum_is_the_threshold(uow):
    settled_commission(uow, 1, 5000)  # 500 fen
    run, _ = payout_run(uow, PayoutRules(min_payout_fen=500))
    assert [p["amount_fen"] for p in run["payouts"]] == [500]


# --- holds, item refunds, carried items (issue 16) -------------------------------------------
def two_rates(order_id, carried=(None, None)):
    """An order with a 20 % item (product 1, 100 CNY) and a 9 % item (product 2, 50 CNY)."""
    return OrderPaid(
        order_id=order_id,
        buyer_id=9,
        supplier_id=SUPPLIER,
        shop_id=SHOP,
        share_id=None,
        self_referral=False,
        paid_fen=15000,
        lines=[
            {
                "product_id": pid,
                "title": "t",
                "quantity": 1,
                "unit_price_fen": amount,
                "amount_fen": amount,
                "commission_bps": bps,
                "carried": c,
            }
            for (pid, amount, bps), c in zip(
                ((1, 10000, 2000), (2, 5000, 900)), carried, strict=True
            )
        ],
        paid_at=T0.isoformat(),
    )


def item_refund(order_id, refund_id, items, total):
    return OrderRefunded(
        order_id=order_id,
        refund_id=refund_id,
        supplier_id=SUPPLIER,
        shop_id=SHOP,
        amount_fen=sum(items.values()),
        paid_fen=15000,
        refunded_total_fen=total,
        at=(T0 + timedelta(hours=1)).isoformat(),
        items=[{"product_id": p, "amount_fen": a} for p, a in items.items()],
    )


def test_refunding_the_9_percent_item_reverses_exactly_its_commission(uow):
    accrual.order_paid(uow, RULES, two_rates(1))
    assert queries.earnings(uow.session, SHOP)["lines"][0]["commission_fen"] == 2450
    assert accrual.order_refunded(uow, RULES, item_refund(1, 7, {2: 5000}, 5000)) is True
    line = queries.earnings(uow.session, SHOP)["lines"][0]
    assert line["reversed_commission_fen"] == 450  # 9 % of 50 CNY, not a blended 18.2 %
    # half of the 20 % item: proportionally half its commission; the duplicate changes nothing
    accrual.order_refunded(uow, RULES, item_refund(1, 8, {1: 5000}, 10000))
    assert accrual.order_refunded(uow, RULES, item_refund(1, 8, {1: 5000}, 10000)) is False
    assert queries.earnings(uow.session, SHOP)["lines"][0]["reversed_commission_fen"] == 1450
    accrual.order_refunded(uow, RULES, item_refund(1, 9, {1: 5000}, 15000))
    line = queries.earnings(uow.session, SHOP)["lines"][0]
    assert line["reversed_commission_fen"] == 2450 and line["net_commission_fen"] == 0
    assert queries.balances(uow.session, [domain.SUPPLIER_PAYABLE], SUPPLIER) == {
        domain.SUPPLIER_PAYABLE: 0
    }


def test_a_refund_with_a_bonus_reverses_the_items_rate_plus_the_bonus(uow):
    accrual.level_changed(
        uow,
        RULES,
        LevelChanged(
            shop_id=SHOP, month="2026-09", old_level="newcomer", new_level="x", bonus_bps=100
        ),
        T0 - timedelta(days=1),
    )
    accrual.order_paid(uow, RULES, two_rates(1))
    accrual.order_refunded(uow, RULES, item_refund(1, 7, {2: 5000}, 5000))
    assert queries.earnings(uow.session, SHOP)["lines"][0]["reversed_commission_fen"] == 500


def test_items_the_shop_does_not_carry_earn_nothing_and_the_line_says_why(uow):
    accrual.order_paid(uow, RULES, two_rates(1, carried=(True, False)))
    line = queries.earnings(uow.session, SHOP)["lines"][0]
    assert line["commission_fen"] == 2000
    assert [(i["product_id"], i["commission_fen"], i["note"]) for i in line["items"]] == [
        (1, 2000, None),
        (2, 0, "not carried by the shop"),
    ]
    assert "product 2: not carried by the shop" in line["notes"]
    everything = PayoutRules(commission_on_carried_items_only=False)  # the rule is configurable
    accrual.order_paid(uow, everything, two_rates(2, carried=(True, False)))
    lines = {ln["order_id"]: ln for ln in queries.earnings(uow.session, SHOP)["lines"]}
    assert lines[2]["commission_fen"] == 2450


def test_an_open_refund_holds_the_order_out_of_settlement_until_it_is_decided(uow):
    from payouts.handlers import refunds
    from shared.contracts.events import RefundDecided, RefundRequested

    accrual.order_paid(uow, RULES, paid(1))
    settlement.order_received(uow, received(1, T0, T0 + timedelta(days=15)))
    ask = RefundRequested(
        order_id=1,
        refund_id=5,
        supplier_id=SUPPLIER,
        shop_id=SHOP,
        amount_fen=10000,
        at=(T0 + timedelta(days=1)).isoformat(),
    )
    assert refunds.refund_requested(uow, ask) is True
    assert refunds.refund_requested(uow, ask) is False  # a duplicate holds nothing more
    line = queries.earnings(uow.session, SHOP)["lines"][0]
    assert line["status"] == "held" and line["holds"][0]["reason"] == "refund_open"
    assert settlement.run(uow, RULES, T0 + timedelta(days=17))["count"] == 0
    no = RefundDecided(
        order_id=1,
        refund_id=5,
        supplier_id=SUPPLIER,
        shop_id=SHOP,
        decision="rejected",
        amount_fen=10000,
        at=(T0 + timedelta(days=18)).isoformat(),
    )
    assert refunds.refund_decided(uow, no) == 1
    assert refunds.refund_requested(uow, ask) is False  # a late redelivery holds nothing
    assert settlement.run(uow, RULES, T0 + timedelta(days=18))["count"] == 1


def test_a_decision_arriving_before_its_request_leaves_no_hold(uow):
    from payouts.handlers import holds, refunds
    from shared.contracts.events import RefundRequested

    accrual.order_paid(uow, RULES, paid(1))
    accrual.order_refunded(uow, RULES, refunded(1, 10000))  # approved: refund_id 1
    late = RefundRequested(
        order_id=1,
        refund_id=1,
        supplier_id=SUPPLIER,
        shop_id=SHOP,
        amount_fen=10000,
        at=T0.isoformat(),
    )
    assert refunds.refund_requested(uow, late) is False
    assert holds.open_holds(uow.session, [1]) == {}
    assert [h["decision"] for h in holds.history(uow.session, 1)] == ["approved"]
