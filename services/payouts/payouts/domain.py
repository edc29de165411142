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
  fen) is paid once (``payout_entry``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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
ACCOUNTS = (CLEARING, PENDING, SETTLEABLE, KEEPER_PAID, SUPPLIER_PAYABLE, SUPPLIER_PAID, FEE)
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


def line_status(paid_fen: int, refunded_fen: int, settled: bool, held: bool = False) -> str:
    if paid_fen > 0 and refunded_fen >= paid_fen:
        return "refunded"
    if held:
        return "held"
    return "settled" if settled else "pending"


# --- holds -----------------------------------------------------------------------------------
REFUND_OPEN = "refund_open"  # a refund request waits for the supplier's decision
HOLD_REASON = re.compile(r"^[a-z_]+(:[A-Za-z0-9_.\-]+)?$")


def check_hold_reason(reason: str) -> str:
    """A hold's reason: ``refund_open``, ``dispute_open``, ``suspended``, ``fraud:<rule>`` ..."""
    if not isinstance(reason, str) or not 0 < len(reason) <= 64 or not HOLD_REASON.match(reason):
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
