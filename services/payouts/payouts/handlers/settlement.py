"""Settlement: the settle signals (``order_received`` with orders' ``after_sales_until``,
``order_completed``) and the settlement run.

A run is set-based: one UPDATE marks every order whose window closed (its facts row is the
sub-ledger: which settlement, how much), one balanced entry per shop goes into the journal
(``domain.settlement_entry``, in one multi-row INSERT), and one INSERT … SELECT writes a
``commission_settled`` event per order into the outbox — built from the contract's fields and
the shared envelope, in SQL, because a run may settle a hundred thousand orders at once.
"""

from __future__ import annotations

import functools
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
from payouts.handlers.journal import FRESH_FACTS, F, post_many, run_lock, utc
from payouts.models import Base, Settlement
from shared import clock
from shared.contracts.events import CommissionSettled, OrderStateChanged
from shared.db import UnitOfWork, dialect_insert, envelope

OUTBOX: Table = Base.metadata.tables["outbox"]
SETTLEMENT_LOCK = 7001


# --- the settle signals ----------------------------------------------------------------------
# One statement per batch of signals (issue 19: every paid order sends both): an upsert of the
# orders' facts rows, ``INSERT … ON CONFLICT (order_id) DO UPDATE``, whose SET merges each
# signal into the row the way the rules say — the first event's supplier and shop when the row
# has none, the earliest receipt and window (``domain.earliest``), the first completion. A batch
# is merged per order first (a row can be updated once per statement), in the same order.
def order_received(uow: UnitOfWork, event: OrderStateChanged) -> None:
    """order_received → when the order's after-sales window closes (``after_sales_until``,
    orders' rule); a repeated receipt keeps the first one. An old message without the field
    leaves the order to settle on ``order_completed``."""
    orders_received(uow, [event])


def orders_received(uow: UnitOfWork, events: list[OrderStateChanged]) -> None:
    """``order_received`` for a batch of receipts, in their order, in one statement."""
    merged: dict[int, dict[str, Any]] = {}
    for event in events:
        until = utc(event.after_sales_until) if event.after_sales_until else None
        row = merged.get(event.order_id)
        if row is None:
            merged[event.order_id] = _signal_row(
                event, received_at=utc(event.at), after_sales_until=until
            )
        else:  # a second receipt of the order in this batch: the earliest of each wins
            row["received_at"] = domain.earliest(row["received_at"], utc(event.at))
            row["after_sales_until"] = domain.earliest(row["after_sales_until"], until)
    _upsert(uow, _receipt_upsert, merged)


def order_completed(uow: UnitOfWork, event: OrderStateChanged) -> None:
    """order_completed → orders closed the after-sales window: the order is settleable."""
    orders_completed(uow, [event])


def orders_completed(uow: UnitOfWork, events: list[OrderStateChanged]) -> None:
    """``order_completed`` for a batch, in one statement: the first completion stays."""
    merged: dict[int, dict[str, Any]] = {}
    for event in events:
        merged.setdefault(event.order_id, _signal_row(event, completed_at=utc(event.at)))
    _upsert(uow, _completion_upsert, merged)


def _signal_row(event: OrderStateChanged, **values: Any) -> dict[str, Any]:
    """The facts row a signal would create (``journal.facts``: fresh, with its supplier)."""
    return {
        **FRESH_FACTS,
        "order_id": event.order_id,
        "supplier_id": event.supplier_id,
        "shop_id": event.shop_id,
        **values,
    }


def _upsert(uow: UnitOfWork, statement: Any, merged: dict[int, dict[str, Any]]) -> None:
    if not merged:
        return
    uow.session.flush()  # (nothing to send in the consumer's own unit of work)
    conn = uow.session.connection()  # Core on the unit of work's transaction: no ORM layer
    conn.execute(statement(conn.dialect.name), list(merged.values()))


def _upsert_of(dialect: str) -> Any:
    """``INSERT INTO order_facts … ON CONFLICT`` builder of the dialect (both have one)."""
    return dialect_insert(F, dialect)


def _first_supplier(new: Any) -> dict[str, Any]:
    """SET: the supplier and shop of the first signal, when the row has no supplier yet."""
    unknown = F.c.supplier_id.is_(None)
    return {
        "supplier_id": case((unknown, new.supplier_id), else_=F.c.supplier_id),
        "shop_id": case((unknown, new.shop_id), else_=F.c.shop_id),
    }


def _earliest(column: str, new: Any) -> Any:
    """SQL of ``domain.earliest(row's, new)``: NULL on either side yields the other."""
    current, incoming = F.c[column], new[column]
    return case(
        (incoming.is_(None), current),
        (or_(current.is_(None), incoming < current), incoming),
        else_=current,
    )


@functools.cache
def _receipt_upsert(dialect: str) -> Any:
    stmt = _upsert_of(dialect)
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[F.c.order_id],
        set_={
            **_first_supplier(new),
            "received_at": _earliest("received_at", new),
            "after_sales_until": _earliest("after_sales_until", new),
        },
    )


@functools.cache
def _completion_upsert(dialect: str) -> Any:
    stmt = _upsert_of(dialect)
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[F.c.order_id],
        set_={
            **_first_supplier(new),
            "completed_at": func.coalesce(F.c.completed_at, new.completed_at),
        },
    )


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
