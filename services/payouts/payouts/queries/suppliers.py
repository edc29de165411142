"""A supplier's money: balance with lines, the monthly statement, settled sales per shop."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from payouts import domain
from payouts.handlers import holds as accrual_holds
from payouts.handlers.journal import F, J
from payouts.queries.balances import balances
from payouts.queries.keepers import statement
from shared import clock

# --- suppliers --------------------------------------------------------------------------------
SUPPLIER_ACCOUNTS = (domain.SUPPLIER_PAYABLE, domain.SUPPLIER_PAID)
SUPPLIER_HEADER = ["date", "entry", "kind", "order_id", "payable_fen", "paid_fen"]
SUPPLIER_HEADER += ["payable_yuan", "paid_yuan"]


def supplier_balance(session: Session, supplier_id: int, limit: int = 500) -> dict[str, Any]:
    """What a supplier is owed: ``pending`` (orders whose window is open), ``settleable`` (what
    the next payout run pays, net of clawbacks), ``paid``, ``held`` (orders with an open hold,
    settled or not: not paid until released) and the latest orders, each with its holds."""
    payable = F.c.supplier_fen - F.c.reversed_supplier_fen
    mine = and_(F.c.supplier_id == supplier_id, F.c.accrued.is_(True))
    pending, held, held_settled = session.execute(
        select(
            func.coalesce(func.sum(case((F.c.settled_at.is_(None), payable), else_=0)), 0),
            func.coalesce(func.sum(case((accrual_holds.is_held(), payable), else_=0)), 0),
            func.coalesce(
                func.sum(
                    case(
                        (and_(accrual_holds.is_held(), F.c.settled_at.is_not(None)), payable),
                        else_=0,
                    )
                ),
                0,
            ),
        ).where(mine)
    ).one()
    owed = session.execute(
        select(func.coalesce(func.sum(J.c.amount_fen), 0))
        .select_from(J.outerjoin(F, F.c.order_id == J.c.order_id))
        .where(
            J.c.account == domain.SUPPLIER_PAYABLE,
            J.c.party_id == supplier_id,
            or_(J.c.order_id.is_(None), F.c.settled_at.is_not(None)),
        )
    ).scalar_one()
    settleable = int(owed) - int(held_settled)
    rows = session.execute(
        select(F).where(mine).order_by(F.c.paid_at.desc(), F.c.order_id.desc()).limit(limit)
    ).all()
    on_hold = accrual_holds.open_holds(session, [r.order_id for r in rows])
    return {
        "supplier_id": supplier_id,
        "pending_fen": int(pending) - (int(held) - int(held_settled)),
        "settleable_fen": settleable,
        "paid_fen": balances(session, [domain.SUPPLIER_PAID], supplier_id)[domain.SUPPLIER_PAID],
        "held_fen": int(held),
        "negative_balance": None
        if not domain.owed_back(settleable)
        else {
            "owed_fen": domain.owed_back(settleable),
            "cause": domain.CLAWBACK_CAUSE,
            "netted_against": "next payout",
        },
        "lines": [supplier_line(r, on_hold.get(r.order_id, [])) for r in rows],
    }


def supplier_line(r: Any, on_hold: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "order_id": r.order_id,
        "shop_id": r.shop_id,
        "paid_fen": int(r.paid_fen),
        "refunded_fen": int(r.refunded_total_fen),
        "commission_fen": int(r.commission_fen - r.reversed_commission_fen),
        "fee_fen": int(r.fee_fen - r.reversed_fee_fen),
        "payable_fen": int(r.supplier_fen - r.reversed_supplier_fen),
        "paid_at": clock.iso(r.paid_at),
        "settled_at": clock.iso(r.settled_at),
        "status": domain.line_status(
            int(r.paid_fen), int(r.refunded_total_fen), r.settled_at is not None, bool(on_hold)
        ),
        "holds": on_hold,
        "notes": [f"held: {h['reason']}" for h in on_hold],
    }


def supplier_statement_csv(session: Session, supplier_id: int, month: str) -> str:
    """A supplier's monthly statement: opening balances of its payable and paid accounts,
    every entry of the month on them (accruals, refunds, payouts), closing balances."""
    return statement(session, SUPPLIER_ACCOUNTS, SUPPLIER_HEADER, supplier_id, month)


def settled_sales(session: Session, month: str) -> dict[str, int]:
    """Sales (paid − refunded) of the orders each shop got settled in ``month``: the figure the
    shop service recalculates levels from (self-referred orders do not count)."""
    start, end = domain.month_bounds(month)
    rows = session.execute(
        select(F.c.shop_id, func.sum(F.c.settled_sales_fen))
        .where(
            F.c.shop_id.is_not(None),
            F.c.self_referral.is_(False),
            F.c.commission_forfeited.is_(False),
            F.c.settled_at >= start,
            F.c.settled_at < end,
        )
        .group_by(F.c.shop_id)
    ).tuples()
    return {str(shop): int(total) for shop, total in rows}
