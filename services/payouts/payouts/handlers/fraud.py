"""Holds on accruals for fraud review and suspension (issue 13), and the admin's decisions.

* ``order_paid``  — every paid order (after its accrual): record the buyer's fingerprints, then
  hold the commission when the shop is suspended (``suspended``) or a fraud rule matches
  (``fraud:same_phone`` / ``same_address`` / ``same_payee`` / ``same_visitor`` / ``velocity``).
* ``keeper_profile`` — shop events carry the keeper's fingerprints (registered phone).
* ``shop_suspension`` — ``shop_suspended`` holds every unsettled earning order of the shop (and
  ``order_paid`` every new one); ``shop_reinstated`` releases the holds the suspension opened.
* ``decide`` — an admin clears a hold (the order settles normally) or forfeits the commission
  (``domain.forfeit_entry``: the keeper's net commission goes to the supplier).

Every hold goes through ``handlers.holds`` (THE hold mechanism, shared with ``refund_open``):
one row of ``accrual_holds`` per hold; while one is open the settlement run skips the order.
Closing records the decision, who took it and why, so every decision stays in the ledger's
history. Handlers never commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, exists, func, insert, or_, select

from payouts import domain, queries
from payouts.domain import PayoutRules
from payouts.handlers import holds
from payouts.handlers.journal import F, facts, post, utc
from payouts.models import AccrualHold, FraudFingerprint, ShopStanding
from shared import clock
from shared.contracts.events import OrderPaid, ShopChanged, ShopSuspension
from shared.db import UnitOfWork
from shared.errors import Conflict, NotFound

FP: Table = FraudFingerprint.__table__  # type: ignore[assignment]
ORDER, PROFILE = "order", "profile"


# --- fingerprints (the read model) -----------------------------------------------------------
def record_fingerprint(
    session: Any,
    member_id: int,
    kind: str,
    fingerprint: str | None,
    source: str,
    at: datetime,
    order_id: int | None = None,
    shop_id: int | None = None,
) -> bool:
    """Remember that ``member_id`` has this fingerprint (once per member, kind, value, source
    and order). Also the entry point for payee accounts (``source="payee"``, kind ``payee``)."""
    if not fingerprint:
        return False
    same = [
        FP.c.member_id == member_id,
        FP.c.kind == kind,
        FP.c.fingerprint == fingerprint,
        FP.c.source == source,
        FP.c.order_id.is_(None) if order_id is None else FP.c.order_id == order_id,
    ]
    if session.execute(select(FP.c.id).where(*same).limit(1)).first():
        return False
    session.add(
        FraudFingerprint(
            member_id=member_id,
            kind=kind,
            fingerprint=fingerprint,
            source=source,
            order_id=order_id,
            shop_id=shop_id,
            seen_at=at,
        )
    )
    return True


def buyer_fingerprints(event: OrderPaid) -> dict[str, str]:
    """The buyer's fingerprints on this order by kind (``BUYER_KINDS``), those it carries."""
    found = {
        "phone": event.buyer_phone_fp,
        "address": event.buyer_address_fp,
        "visitor": event.buyer_visitor_fp,
        "member": str(event.buyer_id),  # the account itself, for velocity
    }
    return {kind: fp for kind, fp in found.items() if fp}


def fingerprints_of(session: Any, member_id: int) -> dict[str, set[str]]:
    """Every fingerprint known for a member, by kind (their orders, profile, payee account)."""
    out: dict[str, set[str]] = {}
    for kind, fp in session.execute(
        select(FP.c.kind, FP.c.fingerprint).where(FP.c.member_id == member_id)
    ).tuples():
        out.setdefault(kind, set()).add(fp)
    return out


def keeper_profile(uow: UnitOfWork, event: ShopChanged, at: datetime | str) -> int:
    """shop_opened / shop_activated → the keeper's fingerprints (registered phone, address)."""
    when = utc(at)
    added = 0
    for kind, fp in (("phone", event.keeper_phone_fp), ("address", event.keeper_address_fp)):
        added += record_fingerprint(uow.session, event.member_id, kind, fp, PROFILE, when)
    uow.session.flush()
    return added


# --- screening a paid order ------------------------------------------------------------------
def _velocity(session: Any, event: OrderPaid, fps: dict[str, str], paid_at: datetime, rules) -> int:
    """Paid orders through the order's shop, in the window, from any of the buyer's
    fingerprints (this order included)."""
    matches = [and_(FP.c.kind == kind, FP.c.fingerprint == fp) for kind, fp in fps.items()]
    return int(
        session.execute(
            select(func.count(func.distinct(FP.c.order_id))).where(
                FP.c.source == ORDER,
                FP.c.shop_id == event.shop_id,
                FP.c.seen_at >= domain.velocity_since(paid_at, rules),
                FP.c.seen_at <= paid_at,
                or_(*matches),
            )
        ).scalar_one()
    )


def _suspended(session: Any, shop_id: int) -> bool:
    row = session.get(ShopStanding, shop_id)
    return bool(row and row.suspended)


def order_paid(uow: UnitOfWork, rules: PayoutRules, event: OrderPaid) -> list[int]:
    """Screen a paid order (after ``accrual.order_paid`` in the same unit of work): record the
    buyer's fingerprints; hold a commission-earning order of a suspended shop, or one a fraud
    rule flags. Returns the ids of the holds opened. (``handlers.paid`` does the same for an
    order's first event in fewer statements.)"""
    session = uow.session
    paid_at = utc(event.paid_at)
    fps = buyer_fingerprints(event)
    for kind, fp in fps.items():
        record_fingerprint(
            session, event.buyer_id, kind, fp, ORDER, paid_at, event.order_id, event.shop_id
        )
    session.flush()
    f = facts(session, event.order_id)
    if event.shop_id is None or f.commission_fen - f.reversed_commission_fen <= 0:
        return []  # nothing earned, nothing to hold
    keeper = event.keeper_member_id
    buyer, of_keeper = {}, {}
    if keeper is not None and keeper != event.buyer_id:
        buyer, of_keeper = (
            fingerprints_of(session, event.buyer_id),
            fingerprints_of(session, keeper),
        )
    count = _velocity(session, event, fps, paid_at, rules)
    reasons = hold_reasons(
        rules, event, _suspended(session, event.shop_id), buyer, of_keeper, count
    )
    return place_holds(uow, f.order_id, reasons)


def hold_reasons(
    rules: PayoutRules,
    event: OrderPaid,
    suspended: bool,
    buyer: dict[str, set[str]],
    keeper: dict[str, set[str]],
    velocity: int,
) -> list[tuple[str, dict[str, Any]]]:
    """Why a commission-earning paid order is held: its shop is suspended; the buyer shares a
    fingerprint with the keeper (``domain.fraud_flags``); too many paid orders through the
    shop from the buyer's fingerprints (``velocity``: this order included)."""
    reasons: list[tuple[str, dict[str, Any]]] = []
    if suspended:
        reasons.append((domain.SUSPENDED_HOLD, {"shop_id": event.shop_id}))
    for flag in domain.fraud_flags(buyer, keeper, rules):
        reasons.append((domain.fraud_reason(flag), {"keeper_member_id": event.keeper_member_id}))
    if domain.velocity_exceeded(velocity, rules):
        limit = {
            "orders": velocity,
            "max_orders": rules.fraud_velocity_max_orders,
            "window_seconds": rules.fraud_velocity_window_seconds,
        }
        reasons.append((domain.fraud_reason("velocity"), limit))
    return reasons


def place_holds(
    uow: UnitOfWork, order_id: int, reasons: list[tuple[str, dict[str, Any]]]
) -> list[int]:
    now = clock.now()
    opened = [holds.place(uow, order_id, r, now, detail=d) for r, d in reasons]
    return [hold_id for hold_id in opened if hold_id is not None]


# --- the same screening as one read, for an order seen for the first time (handlers.paid) ---
# Parts of one statement built once: their parameters are binds (``screening_params``). A
# fingerprint the event does not carry binds NULL, which matches nothing.
BUYER_KINDS = ("phone", "address", "visitor", "member")  # what ``buyer_fingerprints`` names


def screening_params(
    event: OrderPaid, fps: dict[str, str], paid_at: datetime, rules: PayoutRules
) -> dict[str, Any]:
    keeper = event.keeper_member_id
    return {
        "shop_id": event.shop_id,
        "order_id": event.order_id,
        "buyer_id": event.buyer_id,
        # the keeper's fingerprints matter only when the keeper is not the buyer
        "keeper_id": keeper if keeper != event.buyer_id else None,
        "paid_at": paid_at,
        "since": domain.velocity_since(paid_at, rules),
        **{f"{kind}_fp": fps.get(kind) for kind in BUYER_KINDS},
    }


def suspended_now() -> Any:
    """SQL: the shop's standing says suspended (NULL: never suspended)."""
    return (
        select(ShopStanding.suspended)
        .where(ShopStanding.shop_id == bindparam("shop_id"))
        .correlate(None)
        .scalar_subquery()
    )


def others_in_window() -> Any:
    """SQL: ``_velocity`` before this order's fingerprints are written — the other paid orders
    through the shop, in the window, from any of the buyer's fingerprints (add 1 for this
    one)."""
    matches = [
        and_(FP.c.kind == kind, FP.c.fingerprint == bindparam(f"{kind}_fp")) for kind in BUYER_KINDS
    ]
    return (
        select(func.count(func.distinct(FP.c.order_id)))
        .where(
            FP.c.source == ORDER,
            FP.c.shop_id == bindparam("shop_id"),
            FP.c.seen_at >= bindparam("since"),
            FP.c.seen_at <= bindparam("paid_at"),
            FP.c.order_id != bindparam("order_id"),
            or_(*matches),
        )
        .correlate(None)
        .scalar_subquery()
    )


def keeper_shares(k: Any) -> Any:
    """SQL, a join condition on ``k`` (an alias of ``fraud_fingerprints``): the keeper's
    fingerprints the buyer also has — one of this order's, or one recorded for the buyer
    before. Only those decide ``domain.fraud_flags``, so only those are read."""
    b = FP.alias("buyer_fp")
    in_this_order = [
        and_(k.c.kind == kind, k.c.fingerprint == bindparam(f"{kind}_fp"))
        for kind in BUYER_KINDS
        if kind in domain.FINGERPRINT_KINDS
    ]
    recorded = (
        exists()
        .where(
            b.c.member_id == bindparam("buyer_id"),
            b.c.kind == k.c.kind,
            b.c.fingerprint == k.c.fingerprint,
        )
        .correlate(k)
    )
    return and_(
        k.c.member_id == bindparam("keeper_id"),
        k.c.kind.in_(domain.FINGERPRINT_KINDS),
        or_(*in_this_order, recorded),
    )


def record_order_fingerprints(
    session: Any, event: OrderPaid, fps: dict[str, str], paid_at: datetime
) -> None:
    """``record_fingerprint`` of each of the buyer's fingerprints, for an order whose facts row
    this transaction created: none can be recorded for it yet, so one INSERT without checks."""
    session.execute(
        insert(FP),
        [
            {
                "member_id": event.buyer_id,
                "kind": kind,
                "fingerprint": fp,
                "source": ORDER,
                "order_id": event.order_id,
                "shop_id": event.shop_id,
                "seen_at": paid_at,
            }
            for kind, fp in fps.items()
        ],
    )


# --- suspension ------------------------------------------------------------------------------
def shop_suspension(uow: UnitOfWork, event: ShopSuspension, occurred_at: datetime | str) -> int:
    """shop_suspended → hold every unsettled earning order of the shop; shop_reinstated →
    release the holds the suspension opened. The newest event (by ``occurred_at``) wins.
    Returns how many holds were opened or released."""
    session = uow.session
    at = utc(occurred_at)
    standing = session.get(ShopStanding, event.shop_id, with_for_update=True)
    if standing is not None and utc(standing.changed_at) > at:
        return 0  # an older event arriving late
    if standing is None:
        standing = ShopStanding(shop_id=event.shop_id, suspended=False, changed_at=at)
        session.add(standing)
    standing.suspended, standing.reason, standing.changed_at = event.suspended, event.reason, at
    session.flush()
    now = clock.now()
    if event.suspended:
        unsettled = session.execute(
            select(F.c.order_id).where(
                F.c.shop_id == event.shop_id,
                F.c.accrued.is_(True),
                F.c.settled_at.is_(None),
                F.c.commission_fen > F.c.reversed_commission_fen,
            )
        ).scalars()
        detail = {"shop_id": event.shop_id, "reason": event.reason, "by": event.by}
        opened = [
            holds.place(uow, order_id, domain.SUSPENDED_HOLD, now, detail=detail)
            for order_id in list(unsettled)
        ]
        return sum(1 for hold_id in opened if hold_id is not None)
    held = holds.open_rows_of_shop(session, event.shop_id, domain.SUSPENDED_HOLD)
    return len(holds.close(uow, held, domain.RELEASED, event.by, event.reason, now))


# --- the admin's decision --------------------------------------------------------------------
def decide(uow: UnitOfWork, hold_id: int, decision: str, by: str, why: str) -> dict[str, Any]:
    """``cleared``: the hold (and the order's other fraud holds: one review) is released and
    the order settles normally. ``forfeited``: the keeper's net commission goes to the supplier
    (a balanced journal entry), every commission hold of the order closes. Repeating the same
    decision answers the same outcome; a different decision on a closed hold is 409."""
    session = uow.session
    hold = session.get(AccrualHold, hold_id, with_for_update=True)
    if hold is None:
        raise NotFound(f"hold {hold_id} not found", code="hold_not_found")
    if not domain.commission_hold(hold.reason):
        raise Conflict(
            f"a {hold.reason} hold is not decided by an admin",
            code="hold_not_decidable",
            details={"reason": hold.reason},
        )
    if hold.released_at is not None:
        if hold.decision == decision:
            return _answer(session, hold, [], None)
        raise Conflict(
            f"hold {hold.id} was already {hold.decision}",
            code="hold_closed",
            details={"decision": hold.decision},
        )
    f = facts(session, hold.order_id)
    now = clock.now()
    if decision == domain.CLEARED:
        same_review = [
            h
            for h in holds.open_rows(session, hold.order_id)
            if h.id == hold.id or (domain.is_fraud_reason(h.reason) and _is_fraud(hold))
        ]
        closed = holds.close(uow, same_review, domain.CLEARED, by, why, now)
        return _answer(session, hold, closed, None)
    net = int(f.commission_fen - f.reversed_commission_fen)
    if f.shop_id is not None and f.supplier_id is not None:
        e = domain.forfeit_entry(
            f.order_id, f.shop_id, f.supplier_id, net, f.settled_at is not None
        )
        post(session, e, now)
    f.supplier_fen += f.commission_fen
    f.reversed_supplier_fen += f.reversed_commission_fen
    f.commission_fen, f.reversed_commission_fen = 0, 0
    f.commission_forfeited = True
    commission_holds = [
        h for h in holds.open_rows(session, f.order_id) if domain.commission_hold(h.reason)
    ]
    closed = holds.close(uow, commission_holds, domain.FORFEITED, by, why, now)
    return _answer(session, hold, closed, net)


def _is_fraud(hold: AccrualHold) -> bool:
    return domain.is_fraud_reason(hold.reason)


def _answer(
    session: Any, hold: AccrualHold, closed: list[int], forfeited_fen: int | None
) -> dict[str, Any]:
    """The decided hold, every hold of its order, what this request closed (none on a
    repeat) and, for a forfeit, the commission that went to the supplier."""
    order_holds = queries.order_holds(session, hold.order_id)
    return {
        "hold": next(h for h in order_holds if h["id"] == hold.id),
        "order_holds": order_holds,
        "closed": closed,
        "forfeited_fen": forfeited_fen,
    }
