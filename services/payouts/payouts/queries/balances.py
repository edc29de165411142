"""Balances of the ledger's accounts and the books check."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from payouts import domain
from payouts.handlers.journal import J

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
