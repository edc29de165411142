"""Payee accounts, withdrawals, the payout mode and tax withholding through a fake unit of work
(shared.testing.FakeUnitOfWork). The same handlers run on PostgreSQL, behind the real services,
in tests/integration/test_payouts_withdrawals.py."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from payouts import domain, queries
from payouts.domain import PayoutRules
from payouts.handlers import journal, payees, payout_runs, withdrawals
from payouts.models import Base, PayeeChange, Withdrawal
from payouts.provider import TransferFailed, TransferResult, TransferTimeout
from shared import clock
from shared.errors import NotFound, ValidationFailed
from shared.testing import FakeUnitOfWork

RULES = PayoutRules()
TAXED = replace(RULES, tax_withholding=True)
T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
SHOP, MEMBER = 11, 501
CARD = "6222021234567894"


@pytest.fixture
def uow():
    clock.set_now(T0)
    return FakeUnitOfWork(Base.metadata)


def settle(uow, amount, shop=SHOP, n=1):
    """Make ``amount`` settleable for the shop (a settlement entry, as a run posts it)."""
    journal.post(uow.session, domain.settlement_entry(n, shop, amount), clock.now())


def register(uow, member=MEMBER, name="阿花"):
    return payees.set_payee(uow, domain.MEMBER, member, "阿花", "bank", CARD, name)


class Provider:
    """Answers like a provider: the first result per key; optionally refuses or times out."""

    def __init__(self, fail=0, timeout=0):
        self.booked: dict[str, int] = {}
        self.calls = 0
        self.fail, self.timeout = fail, timeout

    def transfer(self, key, party_kind, party_id, amount_fen):
        self.calls += 1
        if self.fail:
            self.fail -= 1
            raise TransferFailed("refused")
        replayed = key in self.booked
        self.booked.setdefault(key, amount_fen)
        if self.timeout and not replayed:
            self.timeout -= 1
            raise TransferTimeout("no answer")
        return TransferResult(f"ref-{key}", replayed)


def withdraw(uow, amount, provider, rules=RULES, shop=SHOP):
    asked = withdrawals.request(uow, rules, shop, MEMBER, amount)
    outcome = withdrawals.transfer(provider, asked, rules.payout_attempts_per_run)
    return withdrawals.finish(uow, asked["id"], outcome)


def balances(uow, shop=SHOP):
    return queries.balances(
        uow.session,
        (domain.SETTLEABLE, domain.IN_TRANSIT, domain.KEEPER_PAID, domain.TAX_WITHHELD),
        shop,
    )


# --- payee accounts ----------------------------------------------------------------------------
def test_a_payee_in_another_name_is_refused(uow):
    with pytest.raises(ValidationFailed) as refused:
        payees.set_payee(uow, domain.MEMBER, MEMBER, "阿花", "alipay", "13800138000", "阿草")
    assert refused.value.code == "payee_name_mismatch"
    assert queries.payee(uow.session, domain.MEMBER, MEMBER) == {"payee": None, "history": []}


def test_a_member_without_a_verified_name_cannot_register(uow):
    with pytest.raises(ValidationFailed) as refused:
        payees.set_payee(uow, domain.MEMBER, MEMBER, None, "alipay", "13800138000", "阿花")
    assert refused.value.code == "real_name_not_verified"


def test_a_malformed_account_is_refused(uow):
    with pytest.raises(ValidationFailed) as refused:
        payees.set_payee(uow, domain.MEMBER, MEMBER, "阿花", "bank", "6222021234567895", "阿花")
    assert refused.value.code == "invalid_payee_account"


def test_every_change_of_a_payee_is_recorded_masked(uow):
    first = register(uow)
    assert first["account"] == "****7894" and first["version"] == 1
    register(uow)  # the same account again: nothing changes
    changed = payees.set_payee(uow, domain.MEMBER, MEMBER, "阿花", "alipay", "13800138000", "阿 花")
    assert (changed["channel"], changed["account"], changed["version"]) == ("alipay", "****8000", 2)
    view = queries.payee(uow.session, domain.MEMBER, MEMBER)
    assert [(h["version"], h["action"], h["account"]) for h in view["history"]] == [
        (2, "changed", "****8000"),
        (1, "registered", "****7894"),
    ]
    stored = uow.session.scalars(select(PayeeChange.account_masked)).all()
    assert CARD not in stored and "13800138000" not in stored


# --- withdrawals -------------------------------------------------------------------------------
def test_a_withdrawal_moves_the_amount_through_transit_to_paid_once(uow):
    register(uow)
    settle(uow, 5000)
    provider = Provider()
    done = withdraw(uow, 3000, provider)
    assert (done["status"], done["net_fen"], done["account"]) == ("paid", 3000, "****7894")
    assert balances(uow) == {
        domain.SETTLEABLE: 2000,
        domain.IN_TRANSIT: 0,
        domain.KEEPER_PAID: 3000,
        domain.TAX_WITHHELD: 0,
    }
    again = withdrawals.finish(uow, done["id"], {"status": "paid", "reference": "x", "tries": 1})
    assert again["status"] == "paid" and balances(uow)[domain.KEEPER_PAID] == 3000
    assert provider.booked == {domain.withdrawal_key(done["id"]): 3000}


def test_the_amount_leaves_settleable_when_asked_so_a_second_ask_is_refused(uow):
    register(uow)
    settle(uow, 5000)
    asked = withdrawals.request(uow, RULES, SHOP, MEMBER, 4000)
    assert asked["status"] == "requested"
    assert balances(uow)[domain.SETTLEABLE] == 1000 and balances(uow)[domain.IN_TRANSIT] == 4000
    with pytest.raises(ValidationFailed) as refused:
        withdrawals.request(uow, RULES, SHOP, MEMBER, 2000)
    assert refused.value.code == "insufficient_balance"


def test_withdrawal_rules_refuse(uow):
    settle(uow, 100000)
    with pytest.raises(ValidationFailed) as refused:
        withdrawals.request(uow, RULES, SHOP, MEMBER, 5000)
    assert refused.value.code == "payee_account_required"
    register(uow)
    with pytest.raises(ValidationFailed) as refused:
        withdrawals.request(uow, RULES, SHOP, MEMBER, 999)
    assert refused.value.code == "below_minimum_payout"
    limited = replace(RULES, withdrawal_daily_limit_fen=6000)
    withdraw(uow, 5000, Provider(), limited)
    with pytest.raises(ValidationFailed) as refused:
        withdrawals.request(uow, limited, SHOP, MEMBER, 1001)
    assert refused.value.code == "daily_limit_exceeded"
    clock.set_now(datetime(2026, 10, 1, 16, 0, tzinfo=UTC))  # midnight in China: a new day
    assert withdrawals.request(uow, limited, SHOP, MEMBER, 5000)["status"] == "requested"


def test_the_fee_is_taken_with_the_amount(uow):
    register(uow)
    settle(uow, 5000)
    rules = replace(RULES, withdrawal_fee_fen=200)
    with pytest.raises(ValidationFailed):
        withdrawals.request(uow, rules, SHOP, MEMBER, 4900)
    done = withdraw(uow, 4800, Provider(), rules)
    assert (done["fee_fen"], done["net_fen"]) == (200, 4800)
    assert balances(uow)[domain.SETTLEABLE] == 0
    assert queries.check_books(uow.session)["accounts"][domain.FEE] == 200


def test_a_timeout_is_resolved_by_asking_again_with_the_same_key(uow):
    register(uow)
    settle(uow, 5000)
    provider = Provider(timeout=1)
    done = withdraw(uow, 5000, provider)
    assert done["status"] == "paid" and done["attempts"] == 2
    assert list(provider.booked.values()) == [5000]


def test_a_failed_withdrawal_stays_in_transit_and_a_retry_pays_it_once(uow):
    register(uow)
    settle(uow, 5000)
    failed = withdraw(uow, 5000, Provider(fail=3))
    assert failed["status"] == "failed" and failed["attempts"] == 3
    assert balances(uow)[domain.IN_TRANSIT] == 5000 and balances(uow)[domain.SETTLEABLE] == 0
    current = withdrawals.withdrawal_view(withdrawals.load(uow.session, SHOP, failed["id"]))
    provider = Provider()
    retried = withdrawals.finish(uow, failed["id"], withdrawals.transfer(provider, current, 3))
    assert retried["status"] == "paid" and balances(uow)[domain.KEEPER_PAID] == 5000
    with pytest.raises(NotFound):
        withdrawals.load(uow.session, SHOP + 1, failed["id"])  # another shop's: 404


def test_withholding_on_a_withdrawal_reconciles(uow):
    register(uow)
    settle(uow, 500000)
    done = withdraw(uow, 500000, Provider(), TAXED)
    assert (done["gross_fen"], done["withheld_fen"], done["net_fen"]) == (500000, 80000, 420000)
    assert done["gross_fen"] == done["withheld_fen"] + done["net_fen"]
    assert balances(uow)[domain.TAX_WITHHELD] == 80000
    assert balances(uow)[domain.KEEPER_PAID] == 420000


# --- payout runs: manual keepers, withholding --------------------------------------------------
def run(uow, rules, provider):
    opened = payout_runs.open_run(uow, rules)
    results = payout_runs.transfer_all(provider, opened["payouts"], 3, concurrency=1)
    return payout_runs.finish_run(uow, opened["run_id"], results)


def test_runs_skip_manual_keepers(uow):
    settle(uow, 5000, shop=11, n=1)
    settle(uow, 5000, shop=12, n=2)
    withdrawals.set_payout_mode(uow, 12, "manual")
    assert queries.payout_settings(uow.session, 12)["payout_mode"] == "manual"
    report = run(uow, RULES, Provider())
    assert [p["shop_id"] for p in report["payouts"]] == [11]


def test_run_payouts_withhold_tax_and_reconcile(uow):
    settle(uow, 500000)
    provider = Provider()
    report = run(uow, TAXED, provider)
    [p] = report["payouts"]
    assert (p["gross_fen"], p["withheld_fen"], p["net_fen"]) == (500000, 80000, 420000)
    assert list(provider.booked.values()) == [420000]  # the provider is sent the net
    assert balances(uow)[domain.TAX_WITHHELD] == 80000
    assert balances(uow)[domain.SETTLEABLE] == 0
    assert queries.check_books(uow.session)["balanced"]


def test_the_tax_statement_lists_run_and_withdrawal_payouts_of_the_year(uow):
    register(uow)
    settle(uow, 1_000_000)
    run(uow, TAXED, Provider())  # pays 1,000,000 gross: nothing left
    settle(uow, 300000, n=2)
    withdraw(uow, 300000, Provider(), TAXED)
    statement = queries.tax_statement(uow.session, TAXED, SHOP, 2026)
    assert [p["kind"] for p in statement["payouts"]] == ["run", "withdrawal"]
    for p in statement["payouts"]:
        assert p["gross_fen"] == p["withheld_fen"] + p["net_fen"]
    assert statement["gross_fen"] == 1_300_000
    assert statement["withheld_fen"] == 160000 + 44000  # 10,000 × 80% × 20%; (3,000 − 800) × 20%
    assert statement["gross_fen"] == statement["withheld_fen"] + statement["net_fen"]
    assert queries.tax_statement(uow.session, TAXED, SHOP, 2025)["payouts"] == []
    history = queries.payout_history(uow.session, SHOP)["items"]
    assert {h["kind"] for h in history} == {"run", "withdrawal"}
    assert len(uow.session.scalars(select(Withdrawal)).all()) == 1
