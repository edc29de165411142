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

from sqlalchemy import Table, and_, func, or_, select

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
    rule flags. Returns the ids of the holds opened."""
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
    reasons: list[tuple[str, dict[str, Any]]] = []
    if _suspended(session, event.shop_id):
        reasons.append((domain.SUSPENDED_HOLD, {"shop_id": event.shop_id}))
    keeper = event.keeper_member_id
    if keeper is not None and keeper != event.buyer_id:
        buyer, of_keeper = (
            fingerprints_of(session, event.buyer_id),
            fingerprints_of(session, keeper),
        )
        for flag in domain.fraud_flags(buyer, of_keeper, rules):
            reasons.append((domain.fraud_reason(flag), {"keeper_member_id": keeper}))
    count = _velocity(session, event, fps, paid_at, rules)
    if domain.velocity_exceeded(count, rules):
        limit = {
            "orders": count,
            "max_orders": rules.fraud_velocity_max_orders,
            "window_seconds": rules.fraud_velocity_window_seconds,
        }
        reasons.append((domain.fraud_reason("velocity"), limit))
    now = clock.now()
    opened = [holds.place(uow, f.order_id, r, now, detail=d) for r, d in reasons]
    return [hold_id for hold_id in opened if hold_id is not None]


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
