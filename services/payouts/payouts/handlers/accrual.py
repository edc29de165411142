"""Accrual: ``order_paid`` accrues commission, fee and supplier payable; ``order_refunded``
reverses the refunded share; ``level_changed`` records the shop's bonus and re-prices orders
it covers that were accrued before it arrived.

Idempotency comes from the order's facts row (``journal.facts``): each handler locks it,
merges its fact and posts only the difference, under an ``entry_id`` unique per movement. So
duplicated events post nothing, a refund arriving before its payment is applied when the
payment arrives, and replaying the whole history rebuilds the same balances.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select

from payouts import domain
from payouts.domain import Accrual, PayoutRules, Reversal
from payouts.handlers import holds
from payouts.handlers.journal import (
    FRESH_FACTS,
    F,
    bonus_at,
    facts,
    insert_ignoring_conflicts,
    level_history,
    post,
    post_many,
    utc,
)
from payouts.models import LevelHistory, OrderFacts
from shared import clock
from shared.contracts.events import LevelChanged, OrderPaid, OrderRefunded
from shared.db import UnitOfWork
from shared.money import allocate

LINE_KEYS = ("product_id", "quantity", "amount_fen", "commission_bps")


def _lines(event: OrderPaid) -> list[dict[str, Any]]:
    """The event's lines: numbers, and whether the shop carried the item (None: not said)."""
    return [
        {**{k: int(getattr(ln, k)) for k in LINE_KEYS}, "carried": ln.carried} for ln in event.lines
    ]


def _lines_json(a: Accrual) -> str:
    """What the facts keep of each line: its share of the accrual (``domain.LineShare``)."""
    return json.dumps([share.as_dict() for share in a.lines])


def shares_of(f: OrderFacts, rules: PayoutRules) -> list[domain.LineShare]:
    """The order's line shares as accrued. Facts written before shares were kept (lines
    without ``commission_fen``) are re-derived: commission by the same rule, the fee the order
    was charged spread over the lines by amount."""
    lines: list[dict[str, Any]] = json.loads(f.lines_json or "[]")
    if all("commission_fen" in ln for ln in lines):
        return [
            domain.LineShare(
                product_id=int(ln["product_id"]),
                amount_fen=int(ln["amount_fen"]),
                commission_bps=int(ln["commission_bps"]),
                carried=bool(ln.get("carried", True)),
                commission_fen=int(ln["commission_fen"]),
                fee_fen=int(ln["fee_fen"]),
                note=ln.get("note"),
            )
            for ln in lines
        ]
    shares = domain.line_shares(lines, f.shop_id, f.self_referral, f.bonus_bps, rules)
    fees = allocate(int(f.fee_fen), [sh.amount_fen for sh in shares])
    return [replace(sh, fee_fen=fee) for sh, fee in zip(shares, fees, strict=True)]


def item_refunds(f: OrderFacts) -> dict[int, int]:
    """Per product, what the refunds seen so far named for it (``order_refunded.items``)."""
    out: dict[int, int] = {}
    for items in json.loads(f.refunds_json or "{}").values():
        for pid, fen in (items or {}).items():
            out[int(pid)] = out.get(int(pid), 0) + int(fen)
    return out


def accrue_event(event: OrderPaid, bonus: int, rules: PayoutRules) -> Accrual:
    """The order's accrual with the keeper's bonus in force at its payment."""
    earns = domain.earns_commission(event.shop_id, event.self_referral)
    return domain.accrue(
        _lines(event),
        event.paid_fen,
        event.shop_id,
        event.self_referral,
        bonus if earns else 0,
        rules,
    )


def facts_of(event: OrderPaid, a: Accrual, paid_at: datetime) -> dict[str, Any]:
    """The facts row of an order accrued from its first event (what ``order_paid`` sets)."""
    return {
        "order_id": event.order_id,
        "shop_id": event.shop_id,
        "supplier_id": event.supplier_id,
        "buyer_id": event.buyer_id,
        "self_referral": event.self_referral,
        "accrued": True,
        "paid_fen": event.paid_fen,
        "paid_at": paid_at,
        "lines_json": _lines_json(a),
        "commission_bps": a.commission_bps,
        "bonus_bps": a.bonus_bps,
        "commission_fen": a.commission_fen,
        "fee_fen": a.fee_fen,
        "supplier_fen": a.supplier_fen,
    }


def order_paid(uow: UnitOfWork, rules: PayoutRules, event: OrderPaid) -> bool:
    """order_paid → accrue commission, fee and supplier payable (once per order)."""
    session = uow.session
    f = facts(session, event.order_id)
    if f.accrued:
        return False
    paid_at = utc(event.paid_at)
    shop_id = event.shop_id
    earns = domain.earns_commission(shop_id, event.self_referral)
    a = accrue_event(event, bonus_at(session, shop_id, paid_at) if shop_id and earns else 0, rules)
    f.shop_id, f.supplier_id, f.buyer_id = shop_id, event.supplier_id, event.buyer_id
    f.self_referral = event.self_referral
    f.paid_fen, f.paid_at = event.paid_fen, paid_at
    f.lines_json = _lines_json(a)
    f.commission_bps, f.bonus_bps = a.commission_bps, a.bonus_bps
    f.commission_fen, f.fee_fen, f.supplier_fen = a.commission_fen, a.fee_fen, a.supplier_fen
    f.accrued = True
    post(
        session,
        domain.accrual_entry(f.order_id, shop_id, event.supplier_id, f.paid_fen, a),
        paid_at,
    )
    _reconcile_refund(uow, rules, f, paid_at)
    session.flush()
    return True


def orders_paid(uow: UnitOfWork, rules: PayoutRules, events: Sequence[OrderPaid]) -> int:
    """Many order_paid facts at once (a replay, a backlog): orders seen for the first time are
    accrued set-based (one multi-row INSERT of facts, one of journal postings); orders that
    already have facts (a duplicate, a refund that came first) go through ``order_paid``.
    Same result as ``order_paid`` for each event. Returns how many accrued."""
    session = uow.session
    by_id: dict[int, OrderPaid] = {}
    for event in events:
        by_id.setdefault(event.order_id, event)
    known = set(
        session.execute(select(F.c.order_id).where(F.c.order_id.in_(list(by_id)))).scalars()
    )
    fresh = [e for oid, e in by_id.items() if oid not in known]
    history = level_history(session, {e.shop_id for e in fresh if e.shop_id is not None})
    rows: list[dict[str, Any]] = []
    accruals: dict[int, tuple[OrderPaid, Accrual, datetime]] = {}
    for e in fresh:
        paid_at = utc(e.paid_at)
        changes = history.get(e.shop_id, []) if e.shop_id is not None else []
        a = accrue_event(e, domain.bonus_in_force(changes, paid_at), rules)
        accruals[e.order_id] = (e, a, paid_at)
        rows.append({**FRESH_FACTS, **facts_of(e, a, paid_at)})
    inserted: set[int] = set()
    if rows:
        stmt = insert_ignoring_conflicts(session, F).returning(F.c.order_id)
        inserted = set(session.execute(stmt, rows).scalars())
    post_many(
        session,
        (
            (domain.accrual_entry(oid, e.shop_id, e.supplier_id, e.paid_fen, a), paid_at)
            for oid in inserted
            for e, a, paid_at in [accruals[oid]]
        ),
    )
    count = len(inserted)
    for oid, e in by_id.items():  # the rest, one by one: duplicates and early refunds
        if oid not in inserted and order_paid(uow, rules, e):
            count += 1
    return count


def order_refunded(uow: UnitOfWork, rules: PayoutRules, event: OrderRefunded) -> bool:
    """order_refunded → reverse the refunded share of commission, fee and supplier payable,
    item by item (each item at its own rate, ``domain.item_reversal``), and release the
    refund's ``refund_open`` hold — in the same transaction, so the order never becomes
    settleable between the hold's end and the reversal."""
    f = facts(uow.session, event.order_id)
    if f.supplier_id is None:
        f.supplier_id, f.shop_id = event.supplier_id, event.shop_id
    f.refunded_total_fen = max(int(f.refunded_total_fen or 0), event.refunded_total_fen)
    seen = json.loads(f.refunds_json or "{}")
    items = {str(i.product_id): i.amount_fen for i in event.items} if event.items else None
    seen[str(event.refund_id)] = items
    f.refunds_json = json.dumps(seen, sort_keys=True)
    posted = _reconcile_refund(uow, rules, f, utc(event.at))
    holds.release(
        uow,
        event.order_id,
        domain.REFUND_OPEN,
        event.at,
        ref=str(event.refund_id),
        decision="approved",
        decided_by=f"supplier:{event.supplier_id}",
        remember=True,
    )
    uow.session.flush()
    return posted


def refund_target(f: OrderFacts, rules: PayoutRules, shares: list[domain.LineShare]) -> Reversal:
    """The cumulative reversal the refunds seen so far call for (``domain.item_reversal``)."""
    refunded = domain.refunded_per_line(shares, item_refunds(f), int(f.refunded_total_fen))
    return domain.item_reversal(shares, refunded, int(f.refunded_total_fen), int(f.paid_fen))


def _refund_suffix(f: OrderFacts) -> str:
    """Which refunds an entry reflects (refunds may arrive in any order)."""
    ids = ",".join(sorted(json.loads(f.refunds_json or "{}")))
    return ":" + hashlib.sha1(ids.encode()).hexdigest()[:10] if ids else ""


def _reconcile_refund(uow: UnitOfWork, rules: PayoutRules, f: OrderFacts, at: datetime) -> bool:
    if not f.accrued or f.supplier_id is None:
        return False  # the payment has not arrived yet: the refund waits in the facts
    target = refund_target(f, rules, shares_of(f, rules))
    already = Reversal(f.reversed_commission_fen, f.reversed_fee_fen, f.reversed_supplier_fen)
    if target == already:
        return False
    e = domain.reversal_entry(
        f.order_id,
        f.shop_id,
        f.supplier_id,
        f.refunded_total_fen,
        target,
        already,
        settled=f.settled_at is not None,
        suffix=_refund_suffix(f),
    )
    post(uow.session, e, at)
    f.reversed_commission_fen, f.reversed_fee_fen, f.reversed_supplier_fen = (
        target.commission_fen,
        target.fee_fen,
        target.supplier_fen,
    )
    return True


def level_changed(
    uow: UnitOfWork, rules: PayoutRules, event: LevelChanged, effective_at: datetime | str
) -> None:
    """level_changed → the shop's bonus (``bonus_bps``, shop's rule) from ``effective_at`` (the
    event's ``occurred_at``) on. Orders of the shop already accrued with a payment at or after
    that instant (the level event arrived after them) are re-priced with the bonus in force
    when they were paid: an adjustment entry moves the difference between the keeper and the
    supplier, refund reversals included."""
    session = uow.session
    row = LevelHistory(
        shop_id=event.shop_id,
        level=event.new_level,
        bonus_bps=event.bonus_bps,
        month=event.month,
        effective_at=utc(effective_at),
    )
    session.add(row)
    session.flush()
    affected = session.execute(
        select(F.c.order_id).where(
            F.c.shop_id == event.shop_id,
            F.c.accrued.is_(True),
            F.c.self_referral.is_(False),
            F.c.commission_forfeited.is_(False),  # a forfeited commission stays forfeited
            F.c.paid_at >= row.effective_at,
        )
    ).scalars()
    for order_id in list(affected):
        f = facts(session, order_id)
        if f.paid_at is None:
            continue
        in_force = bonus_at(session, event.shop_id, utc(f.paid_at))
        if in_force != f.bonus_bps:
            _reprice(uow, f, in_force, rules, f"rebonus:{order_id}:{row.id}")
    session.flush()


def _reprice(uow: UnitOfWork, f: OrderFacts, bonus: int, rules: PayoutRules, entry_id: str) -> None:
    old = shares_of(f, rules)
    lines: Iterable[dict[str, Any]] = [sh.as_dict() for sh in old]
    a = domain.accrue(lines, f.paid_fen, f.shop_id, f.self_referral, bonus, rules)
    # the fee each line was charged stays as it was: only the bonus changes
    shares = [replace(new, fee_fen=was.fee_fen) for new, was in zip(a.lines, old, strict=True)]
    a = replace(
        a,
        fee_fen=f.fee_fen,
        supplier_fen=f.paid_fen - a.commission_fen - f.fee_fen,
        lines=tuple(shares),
    )
    target = refund_target(f, rules, shares)
    keeper_now = f.commission_fen - f.reversed_commission_fen
    supplier_now = f.supplier_fen - f.reversed_supplier_fen
    dk = (a.commission_fen - target.commission_fen) - keeper_now
    ds = (a.supplier_fen - target.supplier_fen) - supplier_now
    keeper_account = domain.SETTLEABLE if f.settled_at is not None else domain.PENDING
    adjustment = domain.entry(
        entry_id,
        "adjustment",
        [
            domain.Posting(keeper_account, f.shop_id or domain.PLATFORM_PARTY, dk),
            domain.Posting(domain.SUPPLIER_PAYABLE, f.supplier_id or domain.PLATFORM_PARTY, ds),
        ],
        f.order_id,
    )
    post(uow.session, adjustment, clock.now())
    f.bonus_bps, f.commission_fen, f.supplier_fen = a.bonus_bps, a.commission_fen, a.supplier_fen
    f.lines_json = _lines_json(a)
    f.reversed_commission_fen, f.reversed_fee_fen, f.reversed_supplier_fen = (
        target.commission_fen,
        target.fee_fen,
        target.supplier_fen,
    )
