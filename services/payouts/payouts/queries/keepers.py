"""A keeper's money: earnings with their holds, the monthly statement (CSV)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from payouts import domain
from payouts.handlers import holds as accrual_holds
from payouts.handlers.journal import F, J, bonus_at
from payouts.queries.balances import KEEPER_ACCOUNTS, STATEMENT_HEADER, balances
from shared import clock
from shared.money import yuan


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
    return statement(session, KEEPER_ACCOUNTS, STATEMENT_HEADER, shop_id, month)


def statement(
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
