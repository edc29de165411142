"""The payouts rules of PRODUCT.md ("Orders and money"), in plain Python (no nameko, no SQLAlchemy).

The ledger (账本) is double-entry in integer fen. Every movement is a *journal entry*: a set of
postings ``(account, party_id, amount_fen)`` whose amounts sum to zero. Balances are sums of
postings; nothing is ever updated or deleted (a correction is a new entry). Sign convention:
what the platform owes (keeper and supplier accounts, the platform fee) is positive, the cash
the platform took in (``platform_clearing``) is negative.

Accounts
  platform_clearing         buyers' money received (negative) and refunded (positive)
  keeper_pending(shop)      commission accrued, after-sales window still open
  keeper_settleable(shop)   commission the keeper may be paid (negative = clawback carried over)
  keeper_paid(shop)         commission transferred to the keeper
  supplier_payable(sup)     price − commission − platform fee, owed to the supplier
  supplier_paid(sup)        transferred to the supplier
  platform_fee              the platform's fee (``platform_fee_bps``, default 0) and
                            withdrawal fees (``withdrawal_fee_fen``)
  keeper_in_transit(shop)   withdrawals asked for and not yet transferred
  tax_withheld(shop)        income tax withheld from the keeper's payouts (owed to the tax office)

Rules, each one a function below:
* accrual (``accrue``): on payment, per order line
  ``apply_bps(line.amount_fen, commission_bps + level bonus_bps)`` — half-up to a whole fen per
  line (``shared.money.apply_bps``), summed. The bonus is the keeper's level bonus in force when
  the order was paid. A self-referred order (the keeper buying in their own shop) or an order
  without a shop earns no commission. Supplier payable = paid − commission − fee.
* refunds (``reversal``): cumulative reversal = ``prorate(refunded_total, paid, commission)``;
  what is posted is that target minus what was already reversed, so duplicated or reordered
  refund events never double-reverse and a full refund reverses exactly all of it. The
  supplier part is the refund minus the commission and fee parts, so ``platform_clearing``
  receives exactly the refunded cash. Before settlement the commission comes out of
  ``keeper_pending``; after settlement out of ``keeper_settleable`` — after a payout that can
  make it negative: a clawback netted against the next run.
* settlement (``settlement_cutoff``): an order is settleable once orders has completed it
  (``order_completed``, sent when the window closes), or once the settlement instant has reached
  the ``after_sales_until`` that ``order_received`` carried: ``after_sales_until <= as_of``.
  The after-sales window itself is ORDERS' rule (``after_sales_days``); payouts never computes
  it. A run posts one entry per shop (``settlement_entry``); each order is marked with the run,
  once. ``settlement_due`` says when the timer runs one (``settlement_interval_seconds``).
* level bonus (``bonus_in_force``): the bonus in force when the order was paid, from the
  ``level_changed`` history by its ``occurred_at`` (the bonus is SHOP's rule, carried in the
  event as ``bonus_bps``); a shop with no level change yet is a newcomer (0 bps). A level change
  processed after orders it covers re-prices them.
* payouts (``payable``, ``minimum_payout_fen``): every keeper (and supplier) whose balance net
  of clawbacks and of transfers still in flight is at least the minimum payout (default 1,000
  fen) is paid once (``payout_entry``). Keepers whose ``payout_mode`` is ``manual`` are
  skipped (``paid_by_runs``): they withdraw.
* payee accounts (``payee_account``, ``names_match``, ``mask_account``): Alipay accounts are a
  mainland mobile number or an e-mail address, bank cards 12–19 digits passing the Luhn check;
  the account holder's name must match the identity record; answers show only the last 4.
* withdrawals (``withdrawal_refusal``, ``withdrawal_debit_fen``): at least the minimum payout;
  amount + fee at most what is settleable (net of run transfers in flight); at most the daily
  limit per China calendar day (``business_day``). Asking moves amount + fee from settleable to
  in transit at once (``withdrawal_requested_entry``); the transfer moves it on to paid, the fee
  and the withheld tax (``withdrawal_paid_entry``).
* income tax (``labour_income_withholding``): off by default; when on, every keeper payout
  (run or withdrawal) is split into gross = withheld + net by the 劳务报酬 prepayment rule.
* holds (issues 13 and 16): an accrual may be HELD with reasons (``refund_open``,
  ``fraud:<rule>``, ``suspended``); a held order is not settled, and a settled one's amounts are
  not paid, until every hold is released (``settleable_while_held`` is False). Fraud
  rules (``fraud_flags``, ``velocity_exceeded``, configured by ``fraud_rules``) compare the
  buyer's fingerprints with the keeper's; the platform clears a hold (the order settles
  normally) or forfeits the commission (``forfeit_entry``: the keeper's net commission goes to
  the supplier, as for an order that never earned any — the books stay balanced).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from shared.money import allocate, apply_bps, prorate
from shared.rules import ConfiguredRules

# --- accounts --------------------------------------------------------------------------------
CLEARING = "platform_clearing"
PENDING = "keeper_pending"
SETTLEABLE = "keeper_settleable"
KEEPER_PAID = "keeper_paid"
SUPPLIER_PAYABLE = "supplier_payable"
SUPPLIER_PAID = "supplier_paid"
FEE = "platform_fee"
IN_TRANSIT = "keeper_in_transit"  # a withdrawal asked for, not yet transferred
TAX_WITHHELD = "tax_withheld"  # individual income tax withheld from a keeper's payouts
ACCOUNTS = (
    CLEARING,
    PENDING,
    SETTLEABLE,
    KEEPER_PAID,
    SUPPLIER_PAYABLE,
    SUPPLIER_PAID,
    FEE,
    IN_TRANSIT,
    TAX_WITHHELD,
)
PLATFORM_PARTY = 0  # party id of the platform's own accounts

KEEPER = "keeper"
SUPPLIER = "supplier"

MONTH = re.compile(r"^(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])$")  # 1970–2999
NEWCOMER_BONUS_BPS = 0  # a shop with no level_changed yet: shop's newcomer level, no bonus


@dataclass(frozen=True)
class PayoutRules(ConfiguredRules):
    """PRODUCT.md defaults; ``config.yml`` RULES overrides each one. The level bonus (shop's
    rule) and the after-sales window (orders' rule) are not here: they arrive in the events."""

    min_payout_fen: int = 1000
    platform_fee_bps: int = 0
    payout_attempts_per_run: int = 3
    settlement_interval_seconds: int = 3600
    # withdrawals (keepers ask to be paid; see the "withdrawals" section below)
    withdrawal_fee_fen: int = 0
    withdrawal_daily_limit_fen: int = 5_000_000  # 50,000 CNY per shop per China calendar day
    # individual income tax on keepers' labour income (劳务报酬), withheld per payment
    tax_withholding: bool = False
    tax_threshold_fen: int = 400_000  # income up to 4,000 CNY: a fixed deduction ...
    tax_fixed_deduction_fen: int = 80_000  # ... of 800 CNY
    tax_deductible_bps: int = 2000  # above it 20% is deductible: taxable = income × 80%
    # "from_fen:rate_bps:quick_deduction_fen" per bracket of the taxable amount
    tax_brackets: str = "0:2000:0,2000000:3000:200000,5000000:4000:700000"
    # fraud rules (issue 13): which are on, and the velocity limit (more than N paid orders
    # through one shop from one buyer fingerprint within the window holds the commission)
    fraud_rules: tuple[str, ...] = (
        "same_phone",
        "same_address",
        "same_payee",
        "same_visitor",
        "velocity",
    )
    fraud_velocity_max_orders: int = 5
    fraud_velocity_window_seconds: int = 86400
    # only the items the attributing shop carries (selected at checkout) earn commission
    commission_on_carried_items_only: bool = True


# --- journal entries -------------------------------------------------------------------------
@dataclass(frozen=True)
class Posting:
    account: str
    party_id: int
    amount_fen: int


@dataclass(frozen=True)
class Entry:
    """A balanced journal entry; ``entry_id`` makes posting it idempotent."""

    entry_id: str
    kind: str
    postings: tuple[Posting, ...]
    order_id: int | None = None

    def __post_init__(self):
        if sum(p.amount_fen for p in self.postings) != 0:
            raise ValueError(f"unbalanced journal entry {self.entry_id}: {self.postings}")
        for p in self.postings:
            if p.account not in ACCOUNTS:
                raise ValueError(f"unknown account {p.account}")


def entry(
    entry_id: str, kind: str, postings: Iterable[Posting], order_id: int | None = None
) -> Entry:
    """Build an entry, dropping zero postings (an entry may end up empty: nothing to post)."""
    return Entry(entry_id, kind, tuple(p for p in postings if p.amount_fen != 0), order_id)


# --- accrual ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Accrual:
    commission_fen: int
    fee_fen: int
    supplier_fen: int
    commission_bps: int  # the product rate (amount-weighted when the lines differ)
    bonus_bps: int
    earns_commission: bool
    lines: tuple[LineShare, ...] = ()


Change = tuple[datetime, int, int]  # a level change: (effective_at, arrival id, bonus_bps)


def bonus_in_force(changes: Iterable[Change], paid_at: datetime) -> int:
    """The keeper's level bonus when the order was paid: that of the latest level change (by
    its ``occurred_at``, then by arrival) at or before ``paid_at``; before any, a newcomer's.
    The bonus of each level is shop's rule: it arrives as ``level_changed.bonus_bps``."""
    past = [c for c in changes if c[0] <= paid_at]
    return max(past)[2] if past else NEWCOMER_BONUS_BPS


def earns_commission(shop_id: int | None, self_referral: bool) -> bool:
    """Single-level distribution: the shop that brought the order earns, never itself."""
    return shop_id is not None and not self_referral


@dataclass(frozen=True)
class LineShare:
    """One order line's part of the accrual: its commission (0 when the line earns nothing,
    ``note`` says why) and its platform fee; the supplier gets the rest."""

    product_id: int
    amount_fen: int
    commission_bps: int
    carried: bool
    commission_fen: int
    fee_fen: int
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "amount_fen": self.amount_fen,
            "commission_bps": self.commission_bps,
            "carried": self.carried,
            "commission_fen": self.commission_fen,
            "fee_fen": self.fee_fen,
            "note": self.note,
        }


NOT_CARRIED = "not carried by the shop"
SELF_REFERRAL = "self-referral: the keeper bought in their own shop"
NO_SHOP = "no shop brought this order"


def line_earns(earns: bool, carried: bool | None, rules: PayoutRules) -> bool:
    """A line earns commission when its order does (``earns_commission``) and — by default
    (``commission_on_carried_items_only``) — the attributing shop carried the item at checkout
    (orders snapshots ``carried`` per line; a line without the fact counts as carried)."""
    if not earns:
        return False
    return carried is not False or not rules.commission_on_carried_items_only


def line_shares(
    lines: Iterable[Mapping[str, Any]],
    shop_id: int | None,
    self_referral: bool,
    bonus_bps: int,
    rules: PayoutRules,
) -> list[LineShare]:
    """Per line: ``apply_bps(amount, commission_bps + bonus)`` half-up when the line earns
    (``line_earns``), else 0 with the reason; the fee ``apply_bps(amount, platform_fee_bps)``."""
    earns = earns_commission(shop_id, self_referral)
    out = []
    for ln in lines:
        amount, bps = int(ln["amount_fen"]), int(ln["commission_bps"])
        carried = ln.get("carried")
        yes = line_earns(earns, carried, rules)
        note = None
        if not earns:
            note = NO_SHOP if shop_id is None else SELF_REFERRAL
        elif not yes:
            note = NOT_CARRIED
        out.append(
            LineShare(
                product_id=int(ln["product_id"]),
                amount_fen=amount,
                commission_bps=bps,
                carried=carried is not False,
                commission_fen=apply_bps(amount, bps + bonus_bps) if yes else 0,
                fee_fen=apply_bps(amount, rules.platform_fee_bps),
                note=note,
            )
        )
    return out


def accrue(
    lines: Iterable[Mapping[str, Any]],
    paid_fen: int,
    shop_id: int | None,
    self_referral: bool,
    bonus_bps: int,
    rules: PayoutRules,
) -> Accrual:
    """Commission, fee and supplier payable of a paid order: the sums of ``line_shares``."""
    lines = list(lines)
    earns = earns_commission(shop_id, self_referral)
    bonus = bonus_bps if earns else 0
    shares = line_shares(lines, shop_id, self_referral, bonus, rules)
    commission = sum(s.commission_fen for s in shares)
    fee = sum(s.fee_fen for s in shares)
    total = sum(s.amount_fen for s in shares)
    rates = {s.commission_bps for s in shares}
    if len(rates) == 1:
        rate = rates.pop()
    elif total > 0:
        rate = (sum(s.amount_fen * s.commission_bps for s in shares) * 2 + total) // (2 * total)
    else:
        rate = 0
    return Accrual(commission, fee, paid_fen - commission - fee, rate, bonus, earns, tuple(shares))


def accrual_entry(
    order_id: int, shop_id: int | None, supplier_id: int, paid_fen: int, a: Accrual
) -> Entry:
    return entry(
        f"accrue:{order_id}",
        "accrual",
        [
            Posting(CLEARING, PLATFORM_PARTY, -paid_fen),
            Posting(PENDING, shop_id or PLATFORM_PARTY, a.commission_fen),
            Posting(FEE, PLATFORM_PARTY, a.fee_fen),
            Posting(SUPPLIER_PAYABLE, supplier_id, a.supplier_fen),
        ],
        order_id,
    )


# --- refunds ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reversal:
    """Cumulative amounts reversed for a refunded total (targets, not deltas)."""

    commission_fen: int
    fee_fen: int
    supplier_fen: int

    @property
    def total_fen(self) -> int:
        return self.commission_fen + self.fee_fen + self.supplier_fen


def reversal(refunded_total_fen: int, paid_fen: int, commission_fen: int, fee_fen: int) -> Reversal:
    """What a cumulative refund of ``refunded_total_fen`` reverses (exact at a full refund)."""
    refunded = max(0, min(refunded_total_fen, paid_fen))
    c = prorate(refunded, paid_fen, commission_fen)
    f = prorate(refunded, paid_fen, fee_fen)
    return Reversal(c, f, refunded - c - f)


def refunded_per_line(
    lines: list[LineShare], item_refunds: Mapping[int, int], refunded_total_fen: int
) -> dict[int, int]:
    """How much of each line is refunded: what the refunds named for it (``items`` of
    ``order_refunded``, capped at the line's amount), and any refunded amount no refund named
    (a message older than item refunds) spread over what is left of each line by largest
    remainder (``shared.money.allocate``)."""
    named = {
        ln.product_id: min(ln.amount_fen, max(0, item_refunds.get(ln.product_id, 0)))
        for ln in lines
    }
    room = [ln.amount_fen - named[ln.product_id] for ln in lines]
    leftover = max(
        0, min(refunded_total_fen, sum(ln.amount_fen for ln in lines)) - sum(named.values())
    )
    for ln, extra in zip(lines, allocate(min(leftover, sum(room)), room), strict=True):
        named[ln.product_id] += extra
    return named


def item_reversal(
    lines: list[LineShare], refunded: Mapping[int, int], refunded_total_fen: int, paid_fen: int
) -> Reversal:
    """What the refunds reverse, line by line: each line's commission and fee at the line's own
    rate (``prorate(refunded, amount, line commission)``, half-up), so refunding one item
    reverses that item's commission and nothing of the others; a line refunded in full
    reverses exactly its commission. The supplier part is the refunded cash minus both, so
    ``platform_clearing`` gets exactly the cash back."""
    if not lines:
        return reversal(refunded_total_fen, paid_fen, 0, 0)
    c = sum(
        prorate(refunded.get(ln.product_id, 0), ln.amount_fen, ln.commission_fen) for ln in lines
    )
    f = sum(prorate(refunded.get(ln.product_id, 0), ln.amount_fen, ln.fee_fen) for ln in lines)
    cash = max(sum(refunded.values()), max(0, min(refunded_total_fen, paid_fen)))
    return Reversal(c, f, cash - c - f)


def reversal_entry(
    order_id: int,
    shop_id: int | None,
    supplier_id: int,
    refunded_total_fen: int,
    target: Reversal,
    already: Reversal,
    settled: bool,
    suffix: str = "",
) -> Entry:
    """Post the difference between the target reversal and what was already reversed."""
    keeper_account = SETTLEABLE if settled else PENDING
    dc = target.commission_fen - already.commission_fen
    df = target.fee_fen - already.fee_fen
    ds = target.supplier_fen - already.supplier_fen
    return entry(
        f"refund:{order_id}:{refunded_total_fen}{suffix}",
        "refund",
        [
            Posting(CLEARING, PLATFORM_PARTY, dc + df + ds),
            Posting(keeper_account, shop_id or PLATFORM_PARTY, -dc),
            Posting(FEE, PLATFORM_PARTY, -df),
            Posting(SUPPLIER_PAYABLE, supplier_id, -ds),
        ],
        order_id,
    )


# --- settlement ------------------------------------------------------------------------------
def settlement_cutoff(as_of: datetime) -> datetime:
    """The settlement window rule: an order whose ``after_sales_until`` (orders' after-sales
    window, sent with ``order_received``) is at or before this instant is settleable in a run
    as of ``as_of`` — the window has closed when ``as_of >= after_sales_until``, not before.
    (A completed order is settleable whatever the instant.) The settlement UPDATE compares
    ``after_sales_until <= settlement_cutoff(as_of)``."""
    return as_of


def settlement_due(last_run_at: datetime | None, now: datetime, rules: PayoutRules) -> bool:
    """The scheduled settlement runs when none ran yet or the last one is at least
    ``settlement_interval_seconds`` old."""
    if last_run_at is None:
        return True
    return (now - last_run_at).total_seconds() >= rules.settlement_interval_seconds


def earliest(current: datetime | None, new: datetime | None) -> datetime | None:
    """A repeated ``order_received`` keeps the first receipt (and its window)."""
    if current is None:
        return new
    if new is None:
        return current
    return min(current, new)


def settlement_entry(settlement_id: int, shop_id: int, amount_fen: int) -> Entry:
    """A settlement run posts one entry per shop: the sum of its orders whose window closed
    (each order's share is kept with the order, which is marked with the settlement's id so it
    can never settle twice)."""
    return entry(
        f"settle:{settlement_id}:{shop_id}",
        "settlement",
        [Posting(PENDING, shop_id, -amount_fen), Posting(SETTLEABLE, shop_id, amount_fen)],
    )


# --- payouts ---------------------------------------------------------------------------------
def minimum_payout_fen(rules: PayoutRules) -> int:
    """The minimum payout: a run pays no party less than this (PRODUCT.md: 10 CNY)."""
    return rules.min_payout_fen


def payable(balance_fen: int, in_flight_fen: int, rules: PayoutRules) -> int:
    """What a run may pay a party: its balance net of clawbacks and open transfers, if it
    reaches the minimum payout; else 0."""
    amount = balance_fen - in_flight_fen
    return amount if amount >= minimum_payout_fen(rules) else 0


def payout_entry(
    payout_id: int, kind: str, party_id: int, amount_fen: int, withheld_fen: int = 0
) -> Entry:
    """A run's transfer: the keeper's gross leaves settleable; the net is paid, the withheld
    income tax (``labour_income_withholding``) is owed to the tax office."""
    if kind == KEEPER:
        legs = [
            Posting(SETTLEABLE, party_id, -amount_fen),
            Posting(KEEPER_PAID, party_id, amount_fen - withheld_fen),
            Posting(TAX_WITHHELD, party_id, withheld_fen),
        ]
    else:
        legs = [
            Posting(SUPPLIER_PAYABLE, party_id, -amount_fen),
            Posting(SUPPLIER_PAID, party_id, amount_fen),
        ]
    return entry(f"payout:{payout_id}", "payout", legs)


def idempotency_key(payout_id: int) -> str:
    """The provider's idempotency key of one payout row: a repeat returns the first result."""
    return f"xiaopu-payout-{payout_id}"


# --- statements ------------------------------------------------------------------------------
def check_month(month: str) -> str:
    if not isinstance(month, str) or not MONTH.match(month):
        raise ValueError("month must look like YYYY-MM")
    return month


def month_bounds(month: str) -> tuple[datetime, datetime]:

    y, m = (int(x) for x in check_month(month).split("-"))
    start = datetime(y, m, 1, tzinfo=UTC)
    end = datetime(y + (m == 12), 1 if m == 12 else m + 1, 1, tzinfo=UTC)
    return start, end


def line_status(paid_fen: int, refunded_fen: int, settled: bool, held: bool = False) -> str:
    if paid_fen > 0 and refunded_fen >= paid_fen:
        return "refunded"
    if held:
        return "held"
    return "settled" if settled else "pending"


# --- payee accounts --------------------------------------------------------------------------
AUTO, MANUAL = "auto", "manual"
PAYOUT_MODES = (AUTO, MANUAL)
ALIPAY, BANK = "alipay", "bank"
PAYEE_CHANNELS = (ALIPAY, BANK)
MEMBER = "member"
PAYEE_KINDS = (MEMBER, SUPPLIER)
MOBILE = re.compile(r"^1[3-9]\d{9}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
CARD = re.compile(r"^\d{12,19}$")


def paid_by_runs(payout_mode: str | None) -> bool:
    """Automatic payout runs pay keepers in ``auto`` mode (the default); ``manual`` keepers
    withdraw when they choose."""
    return payout_mode != MANUAL


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check digit of a bank card number."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def payee_account(channel: str, account: str) -> str:
    """The account in its stored form, or ValueError saying what is wrong with it. Alipay: a
    mainland mobile number or an e-mail address; bank: a card number of 12–19 digits (spaces
    and dashes allowed when typed) with a valid Luhn check digit."""
    raw = account.strip()
    if channel == ALIPAY:
        if MOBILE.match(raw):
            return raw
        if EMAIL.match(raw):
            return raw.lower()
        raise ValueError("an Alipay account is a mainland mobile number or an e-mail address")
    if channel == BANK:
        digits = re.sub(r"[\s-]", "", raw)
        if not CARD.match(digits):
            raise ValueError("a bank card number has 12 to 19 digits")
        if not luhn_ok(digits):
            raise ValueError("the bank card number's check digit is wrong (Luhn)")
        return digits
    raise ValueError(f"channel must be one of {', '.join(PAYEE_CHANNELS)}")


def mask_account(account: str) -> str:
    """What answers show of an account: its last 4 characters."""
    return "****" + account[-4:]


def names_match(declared: str, on_record: str | None) -> bool:
    """The payee's name matches the identity record when both compare equal in match form
    (NFKC, case-folded, white space ignored: "张 三" is 张三); no name on record never matches."""
    from shared.text import match_form

    return bool(on_record) and match_form(declared) == match_form(on_record or "")


# --- withdrawals -----------------------------------------------------------------------------
CHINA = timezone(timedelta(hours=8))


def new_withdrawal_id() -> int:
    """A random, non-sequential id in the positive int32 range (the caller retries on the
    rare collision). ``shared.ids.random_int_id`` once it lands in the kernel."""
    return secrets.randbelow(2**31 - 2) + 1


def business_day(instant: datetime) -> date:
    """The calendar day of the daily withdrawal limit: China's (UTC+8)."""
    return instant.astimezone(CHINA).date()


def withdrawal_debit_fen(amount_fen: int, rules: PayoutRules) -> int:
    """What a withdrawal takes out of settleable: the amount plus the withdrawal fee."""
    return amount_fen + rules.withdrawal_fee_fen


def withdrawal_refusal(
    amount_fen: int, available_fen: int, withdrawn_today_fen: int, rules: PayoutRules
) -> tuple[str, str] | None:
    """Why a withdrawal of ``amount_fen`` is refused (code, message), or None. ``available``
    is the settleable balance net of run transfers in flight; ``withdrawn_today`` what the
    shop already asked for today (``business_day``)."""
    if amount_fen < minimum_payout_fen(rules):
        return "below_minimum_payout", f"the minimum withdrawal is {rules.min_payout_fen} fen"
    if withdrawal_debit_fen(amount_fen, rules) > available_fen:
        return (
            "insufficient_balance",
            f"{amount_fen} fen plus the {rules.withdrawal_fee_fen} fen fee exceeds the "
            f"{max(available_fen, 0)} fen settleable",
        )
    limit = rules.withdrawal_daily_limit_fen
    if limit and withdrawn_today_fen + amount_fen > limit:
        return "daily_limit_exceeded", f"at most {limit} fen may be withdrawn per day"
    return None


def withdrawal_key(withdrawal_id: int) -> str:
    """The provider's idempotency key of a withdrawal: every attempt sends the same one."""
    return f"xiaopu-withdrawal-{withdrawal_id}"


def withdrawal_requested_entry(withdrawal_id: int, shop_id: int, debit_fen: int) -> Entry:
    return entry(
        f"withdraw:{withdrawal_id}",
        "withdrawal_requested",
        [Posting(SETTLEABLE, shop_id, -debit_fen), Posting(IN_TRANSIT, shop_id, debit_fen)],
    )


def withdrawal_paid_entry(
    withdrawal_id: int, shop_id: int, debit_fen: int, fee_fen: int, w: Withholding
) -> Entry:
    return entry(
        f"withdrawn:{withdrawal_id}",
        "withdrawal_paid",
        [
            Posting(IN_TRANSIT, shop_id, -debit_fen),
            Posting(KEEPER_PAID, shop_id, w.net_fen),
            Posting(TAX_WITHHELD, shop_id, w.withheld_fen),
            Posting(FEE, PLATFORM_PARTY, fee_fen),
        ],
    )


# --- income tax on labour income (劳务报酬) ---------------------------------------------------
@dataclass(frozen=True)
class Withholding:
    gross_fen: int
    withheld_fen: int
    net_fen: int


@dataclass(frozen=True)
class TaxBracket:
    above_fen: int  # the bracket applies to a taxable amount above this
    rate_bps: int
    quick_deduction_fen: int


def tax_brackets(rules: PayoutRules) -> tuple[TaxBracket, ...]:
    """``tax_brackets`` ("from_fen:rate_bps:quick_deduction_fen,…") in ascending order."""
    out = []
    for part in rules.tax_brackets.split(","):
        if part.strip():
            above, rate, quick = (int(x) for x in part.split(":"))
            out.append(TaxBracket(above, rate, quick))
    return tuple(sorted(out, key=lambda b: b.above_fen))


def labour_income_taxable_fen(gross_fen: int, rules: PayoutRules) -> int:
    """劳务报酬 prepayment: income ≤ 4,000 CNY → income − 800 (not below 0); above → 80%."""
    if gross_fen <= rules.tax_threshold_fen:
        return max(0, gross_fen - rules.tax_fixed_deduction_fen)
    return apply_bps(gross_fen, 10_000 - rules.tax_deductible_bps)


def labour_income_withholding(gross_fen: int, rules: PayoutRules) -> Withholding:
    """The individual income tax withheld from one payment of labour income (劳务报酬预扣):
    taxable × the rate of its bracket − the bracket's quick deduction (20% up to 20,000 CNY
    taxable, 30% − 2,000 up to 50,000, 40% − 7,000 above), half-up to a fen. Off
    (``tax_withholding``) → nothing withheld. Always gross = withheld + net."""
    if not rules.tax_withholding or gross_fen <= 0:
        return Withholding(gross_fen, 0, gross_fen)
    taxable = labour_income_taxable_fen(gross_fen, rules)
    bracket = [b for b in tax_brackets(rules) if taxable > b.above_fen or b.above_fen == 0][-1]
    tax = apply_bps(taxable, bracket.rate_bps) - bracket.quick_deduction_fen
    withheld = max(0, min(tax, gross_fen))
    return Withholding(gross_fen, withheld, gross_fen - withheld)


def year_bounds(year: int) -> tuple[datetime, datetime]:
    """A tax year: China's calendar year (UTC+8)."""
    if not 1970 <= year <= 2999:
        raise ValueError("year must look like YYYY")
    return datetime(year, 1, 1, tzinfo=CHINA), datetime(year + 1, 1, 1, tzinfo=CHINA)


# --- holds and fraud rules (issue 13) ----------------------------------------------------------
SUSPENDED_HOLD = "suspended"
FRAUD_PREFIX = "fraud:"
CLEARED, FORFEITED, RELEASED = "cleared", "forfeited", "released"
FINGERPRINT_KINDS = ("phone", "address", "visitor", "payee")


def fraud_reason(rule_name: str) -> str:
    return FRAUD_PREFIX + rule_name


def is_fraud_reason(reason: str) -> bool:
    return reason.startswith(FRAUD_PREFIX)


def commission_hold(reason: str) -> bool:
    """Holds about the keeper's commission (fraud review, suspension): forfeiting the
    commission closes them all; other holds (e.g. an open refund) keep their own life."""
    return is_fraud_reason(reason) or reason == SUSPENDED_HOLD


def fraud_flags(
    buyer: Mapping[str, Iterable[str]], keeper: Mapping[str, Iterable[str]], rules: PayoutRules
) -> list[str]:
    """``same_<kind>`` for every enabled kind (phone, address, visitor, payee) where the buyer
    and the shop's keeper share a fingerprint (``shared.fingerprints``)."""
    flags = []
    for kind in FINGERPRINT_KINDS:
        name = f"same_{kind}"
        if name in rules.fraud_rules and set(buyer.get(kind, ())) & set(keeper.get(kind, ())):
            flags.append(name)
    return flags


def velocity_since(paid_at: datetime, rules: PayoutRules) -> datetime:
    """Start of the velocity window ending at the order's payment."""
    return paid_at - timedelta(seconds=rules.fraud_velocity_window_seconds)


def velocity_exceeded(paid_orders_in_window: int, rules: PayoutRules) -> bool:
    """More than ``fraud_velocity_max_orders`` paid orders (this one included) through one shop
    from one buyer fingerprint within the window."""
    return (
        "velocity" in rules.fraud_rules and paid_orders_in_window > rules.fraud_velocity_max_orders
    )


def forfeit_entry(
    order_id: int, shop_id: int, supplier_id: int, net_commission_fen: int, settled: bool
) -> Entry:
    """Forfeiting a held commission: the keeper's net commission (after refunds) leaves the
    keeper's account for the supplier's payable — the order is then priced as one that never
    earned commission (like a self-referred order), so the books stay balanced."""
    keeper_account = SETTLEABLE if settled else PENDING
    return entry(
        f"forfeit:{order_id}",
        "forfeit",
        [
            Posting(keeper_account, shop_id, -net_commission_fen),
            Posting(SUPPLIER_PAYABLE, supplier_id, net_commission_fen),
        ],
        order_id,
    )


# --- holds (refund_open, issue 16; same rows as the fraud and suspension holds above) ----------
REFUND_OPEN = "refund_open"  # a refund request waits for the supplier's decision
HOLD_REASON = re.compile(r"^[a-z_]+(:[A-Za-z0-9_.\-]+)?$")


HOLD_REASON_MAX = 40  # accrual_holds.reason


def check_hold_reason(reason: str) -> str:
    """A hold's reason: ``refund_open``, ``suspended``, ``fraud:<rule>`` ..."""
    if (
        not isinstance(reason, str)
        or not 0 < len(reason) <= HOLD_REASON_MAX
        or not HOLD_REASON.match(reason)
    ):
        raise ValueError(f"bad hold reason {reason!r}")
    return reason


def settleable_while_held() -> bool:
    """The hold rule: an order with an open hold (any reason) is not settled, and a settled
    one's amounts are not paid, until every hold on it is released (settlement and payout runs
    read ``handlers.holds``)."""
    return False


# --- negative balances -----------------------------------------------------------------------
CLAWBACK_CAUSE = "refund after settlement: clawed back from the next earnings"


def owed_back(balance_fen: int) -> int:
    """A negative settleable (or payable) balance is money the party owes back: it is netted
    against its next earnings (``payable`` pays nothing until the balance is positive again
    and at least the minimum). The amount owed, 0 when the balance is not negative."""
    return -balance_fen if balance_fen < 0 else 0
