"""Payee accounts, payout settings, withdrawals, payout history and the yearly tax statement."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from payouts import domain
from payouts.handlers.payees import payee_view
from payouts.handlers.payout_runs import P
from payouts.handlers.withdrawals import W, withdrawal_view
from payouts.models import PayeeAccount, PayeeChange, PayoutSettings
from shared import clock


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
