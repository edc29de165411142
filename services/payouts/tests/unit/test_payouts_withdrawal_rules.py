"""The rules of payee accounts, withdrawals and income-tax withholding (payouts/domain.py)."""

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from payouts import domain
from payouts.domain import PayoutRules

RULES = PayoutRules()
TAXED = replace(RULES, tax_withholding=True)
CNY = 100  # fen


@pytest.mark.parametrize(
    "gross_cny, withheld_cny",
    [
        (800, 0),  # income − 800 = 0
        (1000, 40),  # (1000 − 800) × 20%
        (4000, 640),  # (4000 − 800) × 20%
        (5000, 800),  # 5000 × 80% × 20%
        (25000, 4000),  # taxable 20,000: still 20%
        (30000, 5200),  # taxable 24,000 × 30% − 2,000
        (62500, 13000),  # taxable 50,000 × 30% − 2,000
        (100000, 25000),  # taxable 80,000 × 40% − 7,000
    ],
)
def test_labour_income_withholding_follows_the_prepayment_table(gross_cny, withheld_cny):
    w = domain.labour_income_withholding(gross_cny * CNY, TAXED)
    assert w.withheld_fen == withheld_cny * CNY
    assert w.gross_fen == w.withheld_fen + w.net_fen == gross_cny * CNY


def test_withholding_is_off_by_default():
    w = domain.labour_income_withholding(100000 * CNY, RULES)
    assert (w.gross_fen, w.withheld_fen, w.net_fen) == (10_000_000, 0, 10_000_000)


@pytest.mark.parametrize("gross", [1, 799, 80001, 123457, 400001, 2500037, 6250001, 99999999])
def test_gross_is_withheld_plus_net_to_the_fen(gross):
    w = domain.labour_income_withholding(gross, TAXED)
    assert w.gross_fen == w.withheld_fen + w.net_fen and 0 <= w.withheld_fen < gross


def test_tax_rates_are_configuration():
    flat = replace(TAXED, tax_brackets="0:1000:0")  # 10% of the taxable amount, one bracket
    assert domain.labour_income_withholding(5000 * CNY, flat).withheld_fen == 400 * CNY
    assert [b.rate_bps for b in domain.tax_brackets(TAXED)] == [2000, 3000, 4000]


def test_luhn_check_digit():
    assert domain.luhn_ok("4111111111111111")
    assert not domain.luhn_ok("4111111111111112")


@pytest.mark.parametrize(
    "channel, typed, stored",
    [
        ("alipay", "13800138000", "13800138000"),
        ("alipay", " Ah.Hua@Example.com ", "ah.hua@example.com"),
        ("bank", "6222 0212 3456 7894", "6222021234567894"),
        ("bank", "4111-1111-1111-1111", "4111111111111111"),
    ],
)
def test_payee_accounts_per_channel(channel, typed, stored):
    assert domain.payee_account(channel, typed) == stored


@pytest.mark.parametrize(
    "channel, typed",
    [
        ("alipay", "12800138000"),  # not a mainland mobile number
        ("alipay", "ahua@"),
        ("bank", "41111111111"),  # 11 digits
        ("bank", "41111111111111111111"),  # 20 digits
        ("bank", "4111111111111112"),  # Luhn
        ("wechat", "13800138000"),
    ],
)
def test_malformed_payee_accounts_are_refused(channel, typed):
    with pytest.raises(ValueError):
        domain.payee_account(channel, typed)


def test_answers_show_the_last_four_only():
    assert domain.mask_account("6222021234567894") == "****7894"


def test_payee_name_matches_in_match_form_only():
    assert domain.names_match("张 三", "张三")
    assert domain.names_match("ＺＨＡＮＧ San", "zhang san")
    assert not domain.names_match("张四", "张三")
    assert not domain.names_match("张三", None)


def test_withdrawal_limits():
    rules = replace(RULES, withdrawal_fee_fen=200, withdrawal_daily_limit_fen=50000)
    assert domain.withdrawal_refusal(999, 10**6, 0, rules)[0] == "below_minimum_payout"
    assert domain.withdrawal_refusal(9900, 10000, 0, rules)[0] == "insufficient_balance"
    assert domain.withdrawal_refusal(9800, 10000, 0, rules) is None  # 9,800 + 200 fee
    assert domain.withdrawal_refusal(20000, 10**6, 40000, rules)[0] == "daily_limit_exceeded"
    assert domain.withdrawal_refusal(10000, 10**6, 40000, rules) is None
    assert domain.withdrawal_debit_fen(9800, rules) == 10000


def test_the_daily_limit_counts_china_calendar_days():
    assert domain.business_day(datetime(2026, 10, 1, 16, 30, tzinfo=UTC)) == date(2026, 10, 2)
    assert domain.business_day(datetime(2026, 10, 1, 15, 59, tzinfo=UTC)) == date(2026, 10, 1)


def test_withdrawal_entries_balance_and_carry_fee_and_tax():
    w = domain.Withholding(10000, 1200, 8800)
    asked = domain.withdrawal_requested_entry(5, 11, 10200)
    paid = domain.withdrawal_paid_entry(5, 11, 10200, 200, w)
    legs = {p.account: p.amount_fen for p in paid.postings}
    assert legs == {
        domain.IN_TRANSIT: -10200,
        domain.KEEPER_PAID: 8800,
        domain.TAX_WITHHELD: 1200,
        domain.FEE: 200,
    }
    assert {p.account: p.amount_fen for p in asked.postings} == {
        domain.SETTLEABLE: -10200,
        domain.IN_TRANSIT: 10200,
    }


def test_manual_keepers_are_not_paid_by_runs():
    assert domain.paid_by_runs("auto") and domain.paid_by_runs(None)
    assert not domain.paid_by_runs("manual")


def test_withdrawal_ids_are_random_positive_int32():
    ids = {domain.new_withdrawal_id() for _ in range(200)}
    assert len(ids) > 190 and all(0 < i < 2**31 for i in ids)
