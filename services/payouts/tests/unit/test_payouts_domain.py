"""The payouts rules alone: commission, rounding, reversal math, settlement window, payouts."""

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from payouts import domain
from payouts.domain import PayoutRules
from payouts.provider import SandboxPayoutProvider, TransferFailed, TransferTimeout, parse_parties

RULES = PayoutRules()
T0 = datetime(2026, 10, 1, tzinfo=UTC)


def line(amount, bps):
    return {"product_id": 1, "quantity": 1, "amount_fen": amount, "commission_bps": bps}


def test_defaults_are_the_product_defaults():
    assert RULES.min_payout_fen == 1000
    assert RULES.platform_fee_bps == 0
    assert domain.NEWCOMER_BONUS_BPS == 0


def test_rules_read_from_config_strings():
    r = PayoutRules.from_config({"RULES": {"min_payout_fen": "500", "platform_fee_bps": 20}})
    assert r.min_payout_fen == 500 and r.platform_fee_bps == 20
    assert r.payout_attempts_per_run == 3


def test_the_level_bonus_and_the_after_sales_window_are_not_payouts_rules():
    # shop owns the bonus (level_changed.bonus_bps), orders the window (after_sales_until)
    from pathlib import Path

    import yaml

    config = Path(domain.__file__).with_name("config.yml").read_text()
    keys = set(yaml.safe_load(config)["RULES"])
    assert not {k for k in keys if "bonus" in k or "after_sales" in k}, keys
    assert keys == {f.name for f in dataclasses.fields(PayoutRules)}


def test_the_bonus_in_force_is_the_latest_level_change_at_or_before_the_payment():
    changes = [(T0, 1, 50), (T0 + timedelta(days=30), 2, 100), (T0, 3, 200)]
    assert domain.bonus_in_force([], T0) == 0  # a newcomer until shop says otherwise
    assert domain.bonus_in_force(changes, T0 - timedelta(seconds=1)) == 0
    assert domain.bonus_in_force(changes, T0) == 200  # same instant: the later arrival
    assert domain.bonus_in_force(changes, T0 + timedelta(days=30)) == 100


def test_commission_is_rounded_half_up_per_line_with_the_level_bonus():
    # 333 × 10.5% = 34.965 → 35 ; 1001 × 10.5% = 105.105 → 105 (per line, then summed)
    a = domain.accrue(
        [line(333, 1000), line(1001, 1000)],
        1334,
        shop_id=7,
        self_referral=False,
        bonus_bps=50,
        rules=RULES,
    )
    assert a.commission_fen == 35 + 105
    assert a.bonus_bps == 50 and a.commission_bps == 1000
    assert a.supplier_fen == 1334 - 140 and a.fee_fen == 0


def test_half_fen_rounds_up():
    assert domain.accrue([line(5, 1000)], 5, 1, False, 0, RULES).commission_fen == 1  # 0.5 → 1
    assert domain.accrue([line(4, 1000)], 4, 1, False, 0, RULES).commission_fen == 0  # 0.4 → 0


def test_self_referred_order_and_order_without_shop_earn_no_commission():
    for shop, selfref in ((7, True), (None, False)):
        a = domain.accrue([line(10000, 1500)], 10000, shop, selfref, 200, RULES)
        assert a.commission_fen == 0 and a.bonus_bps == 0 and a.supplier_fen == 10000


def test_supplier_payable_is_paid_minus_commission_minus_platform_fee():
    rules = PayoutRules(platform_fee_bps=300)
    a = domain.accrue([line(10000, 1000)], 10000, 3, False, 100, rules)
    assert (a.commission_fen, a.fee_fen, a.supplier_fen) == (1100, 300, 8600)
    e = domain.accrual_entry(1, 3, 9, 10000, a)
    assert sum(p.amount_fen for p in e.postings) == 0


def test_mixed_rates_report_the_amount_weighted_rate():
    a = domain.accrue([line(1000, 1000), line(3000, 2000)], 4000, 1, False, 0, RULES)
    assert a.commission_bps == 1750


def test_an_unbalanced_entry_is_refused():
    with pytest.raises(ValueError):
        domain.Entry("x", "accrual", (domain.Posting(domain.CLEARING, 0, -1),))


def test_a_full_refund_reverses_all_of_the_commission_exactly():
    commission, fee = 333, 17
    total = domain.Reversal(0, 0, 0)
    for refunded_total in (100, 250, 999):
        target = domain.reversal(refunded_total, 999, commission, fee)
        e = domain.reversal_entry(1, 2, 3, refunded_total, target, total, settled=False)
        assert sum(p.amount_fen for p in e.postings) == 0
        total = target
    assert total == domain.Reversal(commission, fee, 999 - commission - fee)


def test_partial_refunds_reverse_cumulatively_not_per_refund():
    # three refunds of 1 fen on a 3-fen order with 1 fen commission: per-refund proration
    # would round each 0.33 → 0; the cumulative rule reverses it all at the end
    steps = [domain.reversal(t, 3, 1, 0).commission_fen for t in (1, 2, 3)]
    assert steps == [0, 1, 1]


def test_refund_after_settlement_comes_out_of_settleable():
    target = domain.reversal(500, 1000, 100, 0)
    e = domain.reversal_entry(1, 2, 3, 500, target, domain.Reversal(0, 0, 0), settled=True)
    accounts = {p.account: p.amount_fen for p in e.postings}
    assert accounts[domain.SETTLEABLE] == -50 and domain.PENDING not in accounts
    assert accounts[domain.CLEARING] == 500


def test_a_run_settles_windows_closing_at_or_before_its_instant():
    # orders whose after_sales_until <= settlement_cutoff(as_of) settle (handlers tests
    # check the run itself on both sides of the instant)
    assert domain.settlement_cutoff(T0) == T0


def test_scheduled_settlement_is_due_once_the_interval_has_passed():
    rules = PayoutRules(settlement_interval_seconds=3600)
    assert domain.settlement_due(None, T0, rules)
    assert not domain.settlement_due(T0, T0 + timedelta(seconds=3599), rules)
    assert domain.settlement_due(T0, T0 + timedelta(seconds=3600), rules)


def test_a_repeated_receipt_keeps_the_first():
    later = T0 + timedelta(days=1)
    assert domain.earliest(None, T0) == T0 and domain.earliest(T0, None) == T0
    assert domain.earliest(later, T0) == T0 and domain.earliest(T0, later) == T0


def test_a_settlement_run_posts_one_balanced_entry_per_shop():
    e = domain.settlement_entry(4, 7, 1234)
    assert e.entry_id == "settle:4:7"
    assert {(p.account, p.amount_fen) for p in e.postings} == {
        (domain.PENDING, -1234),
        (domain.SETTLEABLE, 1234),
    }


def test_payout_needs_the_minimum_net_of_clawbacks_and_open_transfers():
    assert domain.payable(999, 0, RULES) == 0
    assert domain.payable(1000, 0, RULES) == 1000
    assert domain.payable(1500, 600, RULES) == 0
    assert domain.payable(-200, 0, RULES) == 0
    assert domain.minimum_payout_fen(PayoutRules(min_payout_fen=500)) == 500


def test_a_payout_entry_moves_the_amount_to_the_paid_account():
    keeper = domain.payout_entry(9, domain.KEEPER, 7, 1500)
    supplier = domain.payout_entry(10, domain.SUPPLIER, 3, 800)
    assert keeper.entry_id == "payout:9" and keeper.kind == "payout"
    assert {(p.account, p.amount_fen) for p in keeper.postings} == {
        (domain.SETTLEABLE, -1500),
        (domain.KEEPER_PAID, 1500),
    }
    assert {(p.account, p.amount_fen) for p in supplier.postings} == {
        (domain.SUPPLIER_PAYABLE, -800),
        (domain.SUPPLIER_PAID, 800),
    }


def test_month_is_checked_and_bounded():
    start, end = domain.month_bounds("2026-12")
    assert start == datetime(2026, 12, 1, tzinfo=UTC)
    assert end == datetime(2027, 1, 1, tzinfo=UTC)
    for bad in ("2026-13", "26-01", "2026-1", None):
        with pytest.raises(ValueError):
            domain.check_month(bad)


def test_sandbox_provider_returns_the_first_result_for_a_repeated_key(tmp_path):
    from sqlalchemy import create_engine

    from payouts.models import Base

    engine = create_engine(f"sqlite:///{tmp_path}/sbx.db")
    Base.metadata.create_all(engine)
    p = SandboxPayoutProvider(engine, fail="keeper:2", timeout="keeper:3", fail_times=1)
    first = p.transfer("k1", "keeper", 1, 1000)
    again = p.transfer("k1", "keeper", 1, 1000)
    assert again.reference == first.reference and again.replayed
    with pytest.raises(TransferFailed):
        p.transfer("k2", "keeper", 2, 1000)
    assert not p.transfer("k2", "keeper", 2, 1000).replayed  # fails only the first time
    with pytest.raises(TransferTimeout):
        p.transfer("k3", "keeper", 3, 1000)  # the money moved, the answer was lost
    assert p.transfer("k3", "keeper", 3, 1000).replayed
    assert len(p.transfers()) == 3
    assert parse_parties(" keeper:1 ,*") == frozenset({"keeper:1", "*"})


def test_item_reversal_reverses_each_line_at_its_own_rate_and_reconciles_to_the_fen():
    from payouts.domain import line_shares

    shares = line_shares(
        [
            {"product_id": 1, "amount_fen": 10000, "commission_bps": 2000},
            {"product_id": 2, "amount_fen": 5000, "commission_bps": 900},
            {"product_id": 3, "amount_fen": 333, "commission_bps": 1500, "carried": False},
        ],
        shop_id=1,
        self_referral=False,
        bonus_bps=0,
        rules=domain.PayoutRules(platform_fee_bps=100),
    )
    assert [s.commission_fen for s in shares] == [2000, 450, 0]
    assert shares[2].note == domain.NOT_CARRIED
    refunded = domain.refunded_per_line(shares, {2: 5000}, 5000)
    r = domain.item_reversal(shares, refunded, 5000, 10333 + 5000)
    assert (r.commission_fen, r.fee_fen, r.total_fen) == (450, 50, 5000)
    # an amount no refund named is spread over what is left of each line
    assert domain.refunded_per_line(shares, {2: 5000}, 5000 + 1000) == {1: 968, 2: 5000, 3: 32}
    full = domain.refunded_per_line(shares, {}, 15333)
    r = domain.item_reversal(shares, full, 15333, 15333)
    assert r.commission_fen == 2450 and r.fee_fen == sum(s.fee_fen for s in shares)
