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
  platform_fee              the platform's fee (``platform_fee_bps``, default 0)

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
* settlement (``is_settleable``): an order is settleable when it is completed, or when it was
  received and the after-sales window (default 15 days) has closed: received_at + window <= as_of.
  A run posts one entry per shop (``settlement_entry``); each order is marked with the run, once.
* level bonus: the bonus in force when the order was paid (``level_changed`` history by its
  ``occurred_at``); a level change processed after orders it covers re-prices them.
* payouts (``payable``): every keeper (and supplier) whose balance net of clawbacks and of
  transfers still in flight is at least the minimum payout (default 1,000 fen) is paid once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.money import apply_bps, prorate

# --- accounts --------------------------------------------------------------------------------
CLEARING = "platform_clearing"
PENDING = "keeper_pending"
SETTLEABLE = "keeper_settleable"
KEEPER_PAID = "keeper_paid"
SUPPLIER_PAYABLE = "supplier_payable"
SUPPLIER_PAID = "supplier_paid"
FEE = "platform_fee"
ACCOUNTS = (CLEARING, PENDING, SETTLEABLE, KEEPER_PAID, SUPPLIER_PAYABLE, SUPPLIER_PAID, FEE)
PLATFORM_PARTY = 0  # party id of the platform's own accounts

KEEPER = "keeper"
SUPPLIER = "supplier"

LEVELS = ("newcomer", "senior", "elite", "super")
MONTH = re.compile(r"^(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])$")  # 1970–2999


@dataclass(frozen=True)
class Rules:
    """PRODUCT.md defaults; ``config.yml`` RULES overrides each one."""

    after_sales_window_days: int = 15
    min_payout_fen: int = 1000
    platform_fee_bps: int = 0
    level_bonus_bps: Mapping[str, int] = field(
        default_factory=lambda: {"newcomer": 0, "senior": 50, "elite": 100, "super": 200}
    )
    payout_attempts_per_run: int = 3
    settlement_interval_seconds: int = 3600

    @classmethod
    def from_config(cls, rules: Mapping[str, Any] | None) -> "Rules":
        r = dict(rules or {})
        d = cls()
        bonus = dict(d.level_bonus_bps)
        for level in LEVELS:
            key = f"level_bonus_{level}_bps"
            if r.get(key) is not None:
                bonus[level] = int(r[key])
        return cls(
            after_sales_window_days=int(
                r.get("after_sales_window_days", d.after_sales_window_days)
            ),
            min_payout_fen=int(r.get("min_payout_fen", d.min_payout_fen)),
            platform_fee_bps=int(r.get("platform_fee_bps", d.platform_fee_bps)),
            level_bonus_bps=bonus,
            payout_attempts_per_run=int(
                r.get("payout_attempts_per_run", d.payout_attempts_per_run)
            ),
            settlement_interval_seconds=int(
                r.get("settlement_interval_seconds", d.settlement_interval_seconds)
            ),
        )

    @property
    def after_sales_window(self) -> timedelta:
        return timedelta(days=self.after_sales_window_days)

    def bonus_for_level(self, level: str | None) -> int:
        return int(self.level_bonus_bps.get(level or "newcomer", 0))


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


def earns_commission(shop_id: int | None, self_referral: bool) -> bool:
    """Single-level distribution: the shop that brought the order earns, never itself."""
    return shop_id is not None and not self_referral


def accrue(
    lines: Iterable[Mapping[str, int]],
    paid_fen: int,
    shop_id: int | None,
    self_referral: bool,
    bonus_bps: int,
    rules: Rules,
) -> Accrual:
    """Commission, fee and supplier payable of a paid order (rounded half-up per line)."""
    lines = list(lines)
    earns = earns_commission(shop_id, self_referral)
    bonus = bonus_bps if earns else 0
    commission = (
        sum(apply_bps(int(l["amount_fen"]), int(l["commission_bps"]) + bonus) for l in lines)
        if earns
        else 0
    )
    fee = sum(apply_bps(int(l["amount_fen"]), rules.platform_fee_bps) for l in lines)
    total = sum(int(l["amount_fen"]) for l in lines)
    rates = {int(l["commission_bps"]) for l in lines}
    if len(rates) == 1:
        rate = rates.pop()
    elif total > 0:
        rate = (
            sum(int(l["amount_fen"]) * int(l["commission_bps"]) for l in lines) * 2 + total
        ) // (2 * total)
    else:
        rate = 0
    return Accrual(commission, fee, paid_fen - commission - fee, rate, bonus, earns)


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


def reversal_entry(
    order_id: int,
    shop_id: int | None,
    supplier_id: int,
    refunded_total_fen: int,
    target: Reversal,
    already: Reversal,
    settled: bool,
) -> Entry:
    """Post the difference between the target reversal and what was already reversed."""
    keeper_account = SETTLEABLE if settled else PENDING
    dc = target.commission_fen - already.commission_fen
    df = target.fee_fen - already.fee_fen
    ds = target.supplier_fen - already.supplier_fen
    return entry(
        f"refund:{order_id}:{refunded_total_fen}",
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
def is_settleable(
    completed: bool, received_at: datetime | None, as_of: datetime, rules: Rules
) -> bool:
    """The after-sales window closed: completed, or received + window <= as_of."""
    if completed:
        return True
    return received_at is not None and received_at + rules.after_sales_window <= as_of


def received_cutoff(as_of: datetime, rules: Rules) -> datetime:
    """Orders received at or before this instant are past their after-sales window."""
    return as_of - rules.after_sales_window


def settlement_entry(settlement_id: int, shop_id: int, amount_fen: int) -> Entry:
    """A settlement run posts one entry per shop: the sum of its orders whose window closed
    (each order's share is kept with the order, which is marked with the settlement's id so it
    can never settle twice). ``ledger.run_settlement`` writes the same rows set-based."""
    return entry(
        f"settle:{settlement_id}:{shop_id}",
        "settlement",
        [Posting(PENDING, shop_id, -amount_fen), Posting(SETTLEABLE, shop_id, amount_fen)],
    )


# --- payouts ---------------------------------------------------------------------------------
def payable(balance_fen: int, in_flight_fen: int, rules: Rules) -> int:
    """What a run may pay a party: its balance net of clawbacks and open transfers, if it
    reaches the minimum payout; else 0."""
    amount = balance_fen - in_flight_fen
    return amount if amount >= rules.min_payout_fen else 0


def payout_entry(payout_id: int, kind: str, party_id: int, amount_fen: int) -> Entry:
    if kind == KEEPER:
        legs = [
            Posting(SETTLEABLE, party_id, -amount_fen),
            Posting(KEEPER_PAID, party_id, amount_fen),
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


def line_status(paid_fen: int, refunded_fen: int, settled: bool) -> str:
    if paid_fen > 0 and refunded_fen >= paid_fen:
        return "refunded"
    return "settled" if settled else "pending"
