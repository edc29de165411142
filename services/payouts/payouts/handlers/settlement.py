"""Settlement: the settle signals (``order_received`` with orders' ``after_sales_until``,
``order_completed``) and the settlement run.

A run is set-based: one UPDATE marks every order whose window closed (its facts row is the
sub-ledger: which settlement, how much), one balanced entry per shop goes into the journal
(``domain.settlement_entry``, in one multi-row INSERT), and one INSERT … SELECT writes a
``commission_settled`` event per order into the outbox — built from the contract's fields and
the shared envelope, in SQL, because a run may settle a hundred thousand orders at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Table,
    Text,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from payouts import domain
from payouts.domain import PayoutRules
from payouts.handlers import holds
from payouts.handlers.journal import F, facts, post_many, run_lock, utc
from payouts.models import Base, Settlement
from shared import clock
from shared.contracts.events import CommissionSettled, OrderStateChanged
from shared.db import UnitOfWork, envelope

OUTBOX: Table = Base.metadata.tables["outbox"]
SETTLEMENT_LOCK = 7001


# --- the settle signals ----------------------------------------------------------------------
def order_received(uow: UnitOfWork, event: OrderStateChanged) -> None:
    """order_received → when the order's after-sales window closes (``after_sales_until``,
    orders' rule); a repeated receipt keeps the first one. An old message without the field
    leaves the order to settle on ``order_completed``."""
    f = facts(uow.session, event.order_id)
    if f.supplier_id is None:
        f.supplier_id, f.shop_id = event.supplier_id, event.shop_id
    f.received_at = domain.earliest(_aware(f.received_at), utc(event.at))
    if event.after_sales_until:
        until = utc(event.after_sales_until)
        f.after_sales_until = domain.earliest(_aware(f.after_sales_until), until)
    uow.session.flush()


def order_completed(uow: UnitOfWork, event: OrderStateChanged) -> None:
    """order_completed → orders closed the after-sales window: the order is settleable."""
    f = facts(uow.session, event.order_id)
    if f.supplier_id is None:
        f.supplier_id, f.shop_id = event.supplier_id, event.shop_id
    if f.completed_at is None:
        f.completed_at = utc(event.at)
    uow.session.flush()


def _aware(dt: datetime | None) -> datetime | None:
    return None if dt is None else utc(dt)


# --- the run ---------------------------------------------------------------------------------
def run_if_due(uow: UnitOfWork, rules: PayoutRules, now: datetime) -> dict[str, Any] | None:
    """The timer's run: settle as of ``now`` when ``domain.settlement_due``, else None."""
    last = uow.session.execute(
        select(Settlement.run_at).order_by(Settlement.id.desc()).limit(1)
    ).scalar_one_or_none()
    if not domain.settlement_due(_aware(last), now, rules):
        return None
    return run(uow, rules, now, list_orders=False, run_at=now)


def run(
    uow: UnitOfWork,
    rules: PayoutRules,
    as_of: datetime,
    *,
    list_orders: bool = True,
    run_at: datetime | None = None,
) -> dict[str, Any]:
    """Move every order whose after-sales window closed by ``as_of`` from pending to
    settleable (``domain.settlement_cutoff``): completed orders, and orders whose
    ``after_sales_until`` is at or before ``as_of`` — unless a hold is open on it
    (``domain.settleable_while_held``: a refund waiting for its decision, fraud review, ...)."""
    session = uow.session
    run_lock(session, SETTLEMENT_LOCK)
    as_of = utc(as_of)
    settlement = Settlement(as_of=as_of, run_at=run_at or clock.now(), count=0, total_fen=0)
    session.add(settlement)
    session.flush()
    sid = settlement.id
    due = [
        F.c.accrued.is_(True),
        F.c.settled_at.is_(None),
        or_(
            F.c.completed_at.is_not(None),
            F.c.after_sales_until <= domain.settlement_cutoff(as_of),
        ),
    ]
    if not domain.settleable_while_held():
        due.append(holds.not_held())  # an open refund (or any hold) keeps the order pending
    session.execute(
        update(F)
        .where(*due)
        .values(
            settlement_id=sid,
            settled_at=as_of,
            settled_commission_fen=F.c.commission_fen - F.c.reversed_commission_fen,
            settled_sales_fen=case(
                (F.c.refunded_total_fen >= F.c.paid_fen, 0),
                else_=F.c.paid_fen - F.c.refunded_total_fen,
            ),
        )
    )
    earning = and_(
        F.c.settlement_id == sid,
        F.c.shop_id.is_not(None),
        F.c.self_referral.is_(False),
        F.c.commission_forfeited.is_(False),
    )
    total = func.sum(F.c.settled_commission_fen)
    per_shop = session.execute(
        select(F.c.shop_id, total).where(earning).group_by(F.c.shop_id).having(total != 0)
    ).all()
    post_many(
        session,
        ((domain.settlement_entry(sid, int(shop), int(fen)), as_of) for shop, fen in per_shop),
    )
    _emit_commission_settled(session, earning, as_of)
    count, settled_total = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((earning, F.c.settled_commission_fen), else_=0)), 0),
        ).where(F.c.settlement_id == sid)
    ).one()
    settlement.count, settlement.total_fen = int(count), int(settled_total)
    out: dict[str, Any] = {
        "settlement_id": sid,
        "as_of": clock.iso(as_of),
        "count": int(count),
        "total_fen": int(settled_total),
    }
    if list_orders:
        rows = session.execute(
            select(
                F.c.order_id,
                F.c.shop_id,
                F.c.supplier_id,
                F.c.settled_commission_fen,
                F.c.settled_sales_fen,
            )
            .where(F.c.settlement_id == sid)
            .order_by(F.c.order_id)
        ).all()
        out["settled"] = [
            {
                "order_id": r.order_id,
                "shop_id": r.shop_id,
                "supplier_id": r.supplier_id,
                "amount_fen": int(r.settled_commission_fen),
                "sales_fen": int(r.settled_sales_fen),
            }
            for r in rows
        ]
    session.flush()
    return out


def _json_object(session: Session, pairs: dict[str, Any], as_text: bool = True) -> Any:
    args = [x for key, value in pairs.items() for x in (key, value)]
    if session.get_bind().dialect.name == "postgresql":
        obj = func.json_build_object(*args)
        return cast(obj, Text) if as_text else obj
    return func.json_object(*args)


def _emit_commission_settled(session: Session, earning: Any, as_of: datetime) -> None:
    """One ``commission_settled`` outbox row per earning order of the run, in one INSERT …
    SELECT. The data object has exactly ``CommissionSettled``'s fields and the envelope
    exactly ``shared.db.envelope``'s keys; the event id is ``commission_settled:<order_id>``
    (an order settles once, so its event is written once)."""
    data = {
        "order_id": F.c.order_id,
        "shop_id": F.c.shop_id,
        "amount_fen": F.c.settled_commission_fen,
        "sales_fen": F.c.settled_sales_fen,
        "settled_at": literal(clock.iso(as_of)),
    }
    if set(data) != set(CommissionSettled.model_fields):
        raise TypeError("commission_settled is built from CommissionSettled's fields only")
    event_id = literal("commission_settled:") + cast(F.c.order_id, Text)
    template = envelope("commission_settled", {}, "payouts")
    fields = {
        key: event_id
        if key == "id"
        else _json_object(session, data, as_text=False)
        if key == "data"
        else (null() if value is None else literal(value))
        for key, value in template.items()
    }
    session.execute(
        insert(OUTBOX).from_select(
            ["event_id", "event_type", "payload", "created_at", "attempts"],
            select(
                event_id,
                literal("commission_settled"),
                _json_object(session, fields),
                literal(clock.real_now(), OUTBOX.c.created_at.type),
                literal(0),
            ).where(earning),
        )
    )
