"""Reads of the payouts service and their serialisers: balances, a shop's earnings, monthly
statements, settled sales per shop (shop's level input), the books check, holds on accruals.
Every read of a shop's money is scoped by its ``shop_id`` (the gateway decides who may ask
for which shop)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from payouts import domain
from payouts.handlers import holds as accrual_holds
from payouts.handlers.journal import F, J, bonus_at
from payouts.handlers.payees import payee_view
from payouts.handlers.payout_runs import P
from payouts.handlers.withdrawals import W, withdrawal_view
from payouts.models import AccrualHold, PayeeAccount, PayeeChange, PayoutSettings
from shared import clock
from shared.money import yuan

KEEPER_ACCOUNTS = (domain.PENDING, domain.SETTLEABLE, domain.KEEPER_PAID)
STATEMENT_HEADER = [
    "date",
    "entry",
    "kind",
    "order_id",
    "pending_fen",
    "settleable_fen",
    "paid_fen",
    "pending_yuan",
    "settleable_yuan",
    "paid_yuan",
]


def balances(session: Session, accounts: Iterable[str], party_id: int) -> dict[str, int]:
    """One party's balance per account (0 where nothing was posted)."""
    names = list(accounts)
    rows = session.execute(
        select(J.c.account, func.coalesce(func.sum(J.c.amount_fen), 0))
        .where(J.c.account.in_(names), J.c.party_id == party_id)
        .group_by(J.c.account)
    ).tuples()
    out = {a: 0 for a in names}
    out.update({a: int(v) for a, v in rows})
    return out


def check_books(session: Session) -> dict[str, Any]:
    """The books balance: every entry sums to zero, so all postings together sum to zero."""
    total = session.execute(select(func.coalesce(func.sum(J.c.amount_fen), 0))).scalar_one()
    bad = (
        session.execute(
            select(J.c.entry_id)
            .group_by(J.c.entry_id)
            .having(func.sum(J.c.amount_fen) != 0)
            .limit(20)
        )
        .scalars()
        .all()
    )
    by_account = dict(
        session.execute(select(J.c.account, func.sum(J.c.amount_fen)).group_by(J.c.account))
        .tuples()
        .all()
    )
    entries = session.execute(select(func.count(func.distinct(J.c.entry_id)))).scalar_one()
    return {
        "balanced": int(total) == 0 and not bad,
        "total_fen": int(total),
        "unbalanced_entries": list(bad),
        "entries": int(entries),
        "accounts": {a: int(by_account.get(a) or 0) for a in domain.ACCOUNTS},
    }


def earnings(session: Session, shop_id: int, limit: int = 500) -> dict[str, Any]:
    """A shop's pending, settleable and paid commission and its latest orders; what is held
    (and why, per line) and what it owes back after a clawback (and which orders caused it)."""
    bal = balances(session, KEEPER_ACCOUNTS, shop_id)
    rows = session.execute(
        select(F)
        .where(F.c.shop_id == shop_id, F.c.accrued.is_(True))
        .order_by(F.c.paid_at.desc(), F.c.order_id.desc())
        .limit(limit)
    ).all()
    on_hold = accrual_holds.open_holds(session, [r.order_id for r in rows])
    lines = [earnings_line(r, on_hold.get(r.order_id, [])) for r in rows]
    held = session.execute(
        select(func.coalesce(func.sum(F.c.commission_fen - F.c.reversed_commission_fen), 0)).where(
            F.c.shop_id == shop_id, F.c.accrued.is_(True), accrual_holds.is_held()
        )
    ).scalar_one()
    return {
        "shop_id": shop_id,
        "pending_fen": bal[domain.PENDING],
        "settleable_fen": bal[domain.SETTLEABLE],
        "paid_fen": bal[domain.KEEPER_PAID],
        **_withdrawal_balances(session, shop_id),
        "held_fen": int(held),
        "level_bonus_bps": bonus_at(session, shop_id, clock.now()),
        "negative_balance": negative_balance(bal[domain.SETTLEABLE], lines),
        "lines": lines,
    }


def _withdrawal_balances(session: Session, shop_id: int) -> dict[str, int]:
    """Withdrawals asked for and not yet transferred, and income tax withheld so far."""
    bal = balances(session, (domain.IN_TRANSIT, domain.TAX_WITHHELD), shop_id)
    return {
        "in_transit_fen": bal[domain.IN_TRANSIT],
        "tax_withheld_fen": bal[domain.TAX_WITHHELD],
    }


def negative_balance(balance_fen: int, lines: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A negative settleable balance, never silent: how much is owed back, why, which orders
    clawed it back, and that it is netted against the next earnings (``domain.owed_back``)."""
    owed = domain.owed_back(balance_fen)
    if not owed:
        return None
    return {
        "owed_fen": owed,
        "cause": domain.CLAWBACK_CAUSE,
        "orders": [
            {"order_id": ln["order_id"], "clawback_fen": ln["clawback_fen"]}
            for ln in lines
            if ln.get("clawback_fen")
        ],
        "netted_against": "next earnings",
    }


def earnings_line(r: Any, on_hold: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    on_hold = on_hold or []
    items = [
        {
            k: ln.get(k)
            for k in (
                "product_id",
                "amount_fen",
                "commission_bps",
                "carried",
                "commission_fen",
                "note",
            )
        }
        for ln in json.loads(r.lines_json or "[]")
    ]
    net = int(r.commission_fen - r.reversed_commission_fen)
    clawback = max(0, int(r.settled_commission_fen) - net) if r.settled_at is not None else 0
    notes = [f"product {i['product_id']}: {i['note']}" for i in items if i.get("note")]
    notes += [f"held: {h['reason']}" for h in on_hold]
    if clawback:
        notes.append(f"{clawback} fen {domain.CLAWBACK_CAUSE}")
    return {
        "order_id": r.order_id,
        "paid_fen": int(r.paid_fen),
        "commission_bps": r.commission_bps,
        "bonus_bps": r.bonus_bps,
        "commission_fen": int(r.commission_fen),
        "refunded_fen": int(r.refunded_total_fen),
        "reversed_commission_fen": int(r.reversed_commission_fen),
        "net_commission_fen": int(r.commission_fen - r.reversed_commission_fen),
        "self_referral": bool(r.self_referral),
        "paid_at": clock.iso(r.paid_at),
        "settled_at": clock.iso(r.settled_at),
        "status": domain.line_status(
            int(r.paid_fen), int(r.refunded_total_fen), r.settled_at is not None, bool(on_hold)
        ),
        "holds": on_hold,
        "clawback_fen": clawback,
        "items": items,
        "notes": notes,
    }


def statement_csv(session: Session, shop_id: int, month: str) -> str:
    """A keeper's monthly statement: opening balances, every journal entry of the month that
    touched the keeper's accounts, closing balances (fen, and yuan for reading)."""
    return _statement(session, KEEPER_ACCOUNTS, STATEMENT_HEADER, shop_id, month)


def _statement(
    session: Session, accounts: tuple[str, ...], header: list[str], party_id: int, month: str
) -> str:
    """Opening balances of ``accounts`` (in ``header`` order), every entry of the month that
    touched them, closing balances."""
    start, end = domain.month_bounds(month)
    mine = and_(J.c.account.in_(accounts), J.c.party_id == party_id)

    def totals(before: datetime) -> dict[str, Any]:
        rows = session.execute(
            select(J.c.account, func.sum(J.c.amount_fen))
            .where(mine, J.c.posted_at < before)
            .group_by(J.c.account)
        ).tuples()
        out: dict[str, Any] = {a: 0 for a in accounts}
        out.update({a: int(v) for a, v in rows})
        return out

    entries = session.execute(
        select(J.c.entry_id, J.c.kind, J.c.order_id, J.c.account, J.c.amount_fen, J.c.posted_at)
        .where(mine, J.c.posted_at >= start, J.c.posted_at < end)
        .order_by(J.c.posted_at, J.c.id)
    ).all()
    grouped: dict[str, dict[str, Any]] = {}
    for r in entries:
        g = grouped.setdefault(
            r.entry_id,
            {
                "posted_at": clock.iso(r.posted_at),
                "kind": r.kind,
                "order_id": r.order_id or "",
                **{a: 0 for a in accounts},
            },
        )
        g[r.account] += int(r.amount_fen)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)

    def row(date: str | None, entry_id: str, kind: str, order_id: Any, b: dict[str, Any]) -> None:
        vals = [b[a] for a in accounts]
        w.writerow([date, entry_id, kind, order_id, *vals, *(yuan(v) for v in vals)])

    row(clock.iso(start), "", "opening_balance", "", totals(start))
    for entry_id, g in grouped.items():
        row(g["posted_at"], entry_id, g["kind"], g["order_id"], g)
    row(clock.iso(end), "", "closing_balance", "", totals(end))
    return buf.getvalue()


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
    return _statement(session, SUPPLIER_ACCOUNTS, SUPPLIER_HEADER, supplier_id, month)


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


# --- payees, withdrawals, payout history, tax statements ------------------------------------
def payee(session: Session, party_kind: str, party_id: int) -> dict[str, Any]:
    """The party's payee account (masked) and every registration or change of it."""
    row = session.get(PayeeAccount, (party_kind, party_id))
    history = session.scalars(
        select(PayeeChange)
        .where(PayeeChange.party_kind == party_kind, PayeeChange.party_id == party_id)
        .order_by(PayeeChange.id.desc())
    ).all()
    return {
        "payee": payee_view(row) if row is not None else None,
        "history": [
            {
                "version": h.version,
                "action": h.action,
                "channel": h.channel,
                "account": h.account_masked,
                "real_name": h.real_name,
                "changed_at": clock.iso(h.changed_at),
            }
            for h in history
        ],
    }


def payout_settings(session: Session, shop_id: int) -> dict[str, Any]:
    row = session.get(PayoutSettings, shop_id)
    return {"shop_id": shop_id, "payout_mode": row.payout_mode if row else domain.AUTO}


def withdrawals(session: Session, shop_id: int, limit: int = 200) -> dict[str, Any]:
    """The shop's withdrawals, newest first."""
    rows = session.execute(
        select(W).where(W.c.shop_id == shop_id).order_by(W.c.created_at.desc()).limit(limit)
    ).all()
    return {"items": [withdrawal_view(r) for r in rows], "next_cursor": None}


def _run_payouts(session: Session, shop_id: int, *where: Any) -> list[dict[str, Any]]:
    rows = session.execute(
        select(P).where(P.c.party_kind == domain.KEEPER, P.c.party_id == shop_id, *where)
    ).all()
    return [
        {
            "kind": "run",
            "id": int(r.id),
            "run_id": int(r.run_id),
            "status": r.status,
            "gross_fen": int(r.amount_fen),
            "withheld_fen": int(r.withheld_fen),
            "net_fen": int(r.amount_fen) - int(r.withheld_fen),
            "fee_fen": 0,
            "created_at": clock.iso(r.created_at),
            "paid_at": clock.iso(r.paid_at),
        }
        for r in rows
    ]


def _withdrawal_payouts(session: Session, shop_id: int, *where: Any) -> list[dict[str, Any]]:
    rows = session.execute(select(W).where(W.c.shop_id == shop_id, *where)).all()
    return [
        {
            "kind": "withdrawal",
            "id": int(w.id),
            "status": w.status,
            "gross_fen": int(w.amount_fen),
            "withheld_fen": int(w.withheld_fen),
            "net_fen": int(w.net_fen),
            "fee_fen": int(w.fee_fen),
            "created_at": clock.iso(w.created_at),
            "paid_at": clock.iso(w.paid_at),
        }
        for w in rows
    ]


def _newest_first(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda i: clock.parse(i["paid_at"] or i["created_at"]), reverse=True)


def payout_history(session: Session, shop_id: int) -> dict[str, Any]:
    """Every payout of the keeper, newest first: payout runs' and its own withdrawals."""
    items = _run_payouts(session, shop_id) + _withdrawal_payouts(session, shop_id)
    return {"items": _newest_first(items), "next_cursor": None}


def tax_statement(
    session: Session, rules: domain.PayoutRules, shop_id: int, year: int
) -> dict[str, Any]:
    """The keeper's payouts paid in a (China) calendar year: gross, withheld and net each."""
    start, end = domain.year_bounds(year)
    paid = _run_payouts(
        session, shop_id, P.c.status == "paid", P.c.paid_at >= start, P.c.paid_at < end
    ) + _withdrawal_payouts(
        session, shop_id, W.c.status == "paid", W.c.paid_at >= start, W.c.paid_at < end
    )
    paid = _newest_first(paid)[::-1]
    return {
        "shop_id": shop_id,
        "year": year,
        "withholding": rules.tax_withholding,
        "payouts": paid,
        "gross_fen": sum(p["gross_fen"] for p in paid),
        "withheld_fen": sum(p["withheld_fen"] for p in paid),
        "net_fen": sum(p["net_fen"] for p in paid),
    }


# --- holds (issues 13, 16) -------------------------------------------------------------------
H = AccrualHold.__table__


def _hold_select() -> Any:
    return select(
        H,
        F.c.paid_fen,
        F.c.supplier_id,
        (F.c.commission_fen - F.c.reversed_commission_fen).label("net_commission_fen"),
        F.c.after_sales_until,
        F.c.settled_at,
        F.c.commission_forfeited,
    ).select_from(H.outerjoin(F, F.c.order_id == H.c.order_id))


def hold_dict(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "order_id": r.order_id,
        "shop_id": r.shop_id,
        "supplier_id": r.supplier_id,
        "reason": r.reason,
        "ref": r.ref or None,
        "detail": json.loads(r.detail) if r.detail else None,
        "status": "open" if r.released_at is None else "closed",
        "created_at": clock.iso(r.created_at),
        "released_at": clock.iso(r.released_at),
        "decision": r.decision,
        "decided_by": r.decided_by,
        "decision_reason": r.decision_reason,
        "paid_fen": int(r.paid_fen or 0),
        "net_commission_fen": int(r.net_commission_fen or 0),
        "commission_forfeited": bool(r.commission_forfeited),
        "after_sales_until": clock.iso(r.after_sales_until),  # when it would settle unheld
        "settled_at": clock.iso(r.settled_at),
    }


def holds(session: Session, status: str, shop_id: int | None, limit: int) -> dict[str, Any]:
    """``GET /api/v1/admin/holds``: holds by status (open, closed, all), newest first."""
    stmt = _hold_select().order_by(H.c.id.desc()).limit(limit)
    if status == "open":
        stmt = stmt.where(H.c.released_at.is_(None))
    elif status == "closed":
        stmt = stmt.where(H.c.released_at.is_not(None))
    if shop_id is not None:
        stmt = stmt.where(H.c.shop_id == shop_id)
    rows = [hold_dict(r) for r in session.execute(stmt).all()]
    return {"status": status, "count": len(rows), "holds": rows}


def order_holds(session: Session, order_id: int) -> list[dict[str, Any]]:
    """Every hold of one order, oldest first (its history)."""
    stmt = _hold_select().where(H.c.order_id == order_id).order_by(H.c.id)
    return [hold_dict(r) for r in session.execute(stmt).all()]
