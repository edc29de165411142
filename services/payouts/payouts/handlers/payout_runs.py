"""Payout runs: two transactions around the provider calls.

1. ``open_run`` (a unit of work): a ``pending`` payout row for every party whose balance, net
   of clawbacks, of transfers still open and of settled orders under an open hold
   (``holds.held_settled_by_party``), reaches the minimum payout (``domain.payable``);
   returns every open row (this run's and those earlier runs left failed or interrupted).
2. ``transfer_all`` (no transaction): one provider call per row, under the row's idempotency
   key, retried up to ``payout_attempts_per_run`` times.
3. ``finish_run`` (a unit of work): mark the transferred rows paid, post their journal entries
   (``domain.payout_entry``), emit ``payout_paid`` per keeper; failed rows stay open for the
   next run. A run interrupted anywhere is simply run again: keys make repeats harmless.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, Table, func, insert, or_, select, update

from payouts import domain
from payouts.domain import PayoutRules
from payouts.handlers import holds, tax
from payouts.handlers.journal import F, J, post_many, run_lock
from payouts.models import Payout, PayoutRun, PayoutSettings
from payouts.provider import PayoutProvider, TransferFailed, TransferTimeout
from shared import clock
from shared.contracts.events import PayoutPaid
from shared.db import UnitOfWork

P: Table = Payout.__table__  # type: ignore[assignment]
OPEN = ("pending", "failed")
PAYOUT_LOCK = 7002
CHUNK = 500


def _keeper_balances() -> Select[Any]:
    return (
        select(J.c.party_id, func.sum(J.c.amount_fen))
        .where(J.c.account == domain.SETTLEABLE)
        .group_by(J.c.party_id)
    )


def _supplier_balances() -> Select[Any]:
    """Supplier payable of settled orders (and payouts / clawbacks, which carry no order)."""
    return (
        select(J.c.party_id, func.sum(J.c.amount_fen))
        .select_from(J.outerjoin(F, F.c.order_id == J.c.order_id))
        .where(
            J.c.account == domain.SUPPLIER_PAYABLE,
            or_(J.c.order_id.is_(None), F.c.settled_at.is_not(None)),
        )
        .group_by(J.c.party_id)
    )


def open_run(uow: UnitOfWork, rules: PayoutRules, *, suppliers: bool = True) -> dict[str, Any]:
    """Transaction 1 of a run (see the module docstring)."""
    session = uow.session
    run_lock(session, PAYOUT_LOCK)
    now = clock.now()
    run = PayoutRun(started_at=now, total_fen=0)
    session.add(run)
    session.flush()
    manual = {  # keepers who withdraw themselves
        shop
        for shop, mode in session.execute(
            select(PayoutSettings.shop_id, PayoutSettings.payout_mode)
        ).tuples()
        if not domain.paid_by_runs(mode)
    }
    kinds = [(domain.KEEPER, _keeper_balances())]
    if suppliers:
        kinds.append((domain.SUPPLIER, _supplier_balances()))
    rows: list[dict[str, Any]] = []
    for kind, balances in kinds:
        held = holds.held_settled_by_party(session, kind)  # settled, then held: not paid yet
        in_flight = {
            party_id: int(fen or 0)
            for party_id, fen in session.execute(
                select(P.c.party_id, func.sum(P.c.amount_fen))
                .where(P.c.party_kind == kind, P.c.status.in_(OPEN))
                .group_by(P.c.party_id)
            ).tuples()
        }
        for party_id, balance in session.execute(balances).tuples():
            amount = domain.payable(
                int(balance) - held.get(party_id, 0), in_flight.get(party_id, 0), rules
            )
            if kind == domain.KEEPER and party_id in manual:
                continue
            if party_id != domain.PLATFORM_PARTY and amount:
                rows.append(
                    {
                        "run_id": run.id,
                        "party_kind": kind,
                        "party_id": party_id,
                        "amount_fen": amount,
                        "status": "pending",
                        "attempts": 0,
                        "created_at": now,
                    }
                )
    if rows:
        session.execute(insert(P), tax.withhold_from_run_rows(rules, rows))
    payouts = session.execute(
        select(P.c.id, P.c.party_kind, P.c.party_id, P.c.amount_fen, P.c.withheld_fen, P.c.run_id)
        .where(P.c.status.in_(OPEN))
        .order_by(P.c.id)
    ).all()
    session.flush()
    return {"run_id": run.id, "payouts": [dict(r._mapping) for r in payouts]}


def transfer_all(
    provider: PayoutProvider, payouts: list[dict[str, Any]], attempts: int, concurrency: int = 8
) -> list[dict[str, Any]]:
    """The provider calls, outside any transaction: each payout row's idempotency key, retried
    up to ``attempts`` times in this run, ``concurrency`` parties at a time. Anything else the
    provider raises aborts the run (its rows stay ``pending``; the next run repeats the keys)."""

    def one(p: dict[str, Any]) -> dict[str, Any]:
        key = domain.idempotency_key(p["id"])
        outcome = {**p, "status": "failed", "reference": None, "error": None, "tries": 0}
        for _ in range(max(1, attempts)):
            outcome["tries"] += 1
            try:
                res = provider.transfer(key, p["party_kind"], p["party_id"], tax.net_fen(p))
            except (TransferFailed, TransferTimeout) as exc:
                outcome["error"] = f"{type(exc).__name__}: {exc}"
                continue
            outcome.update(status="paid", reference=res.reference, error=None)
            break
        return outcome

    if concurrency <= 1 or len(payouts) <= 1:
        return [one(p) for p in payouts]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, payouts))


def _mark_paid(uow: UnitOfWork, run_id: int, ids: list[int], now: Any) -> set[int]:
    newly_paid: set[int] = set()
    for i in range(0, len(ids), CHUNK):
        newly_paid.update(
            uow.session.execute(
                update(P)
                .where(P.c.id.in_(ids[i : i + CHUNK]), P.c.status != "paid")
                .values(
                    status="paid",
                    paid_run_id=run_id,
                    paid_at=now,
                    attempts=P.c.attempts + 1,
                    last_error=None,
                )
                .returning(P.c.id)
            ).scalars()
        )
    return newly_paid


def _mark_failed(uow: UnitOfWork, failed: Iterable[dict[str, Any]]) -> set[int]:
    """Mark this run's failed transfers (not one another run paid meanwhile); their ids."""
    marked: set[int] = set()
    for r in failed:
        marked.update(
            uow.session.execute(
                update(P)
                .where(P.c.id == r["id"], P.c.status != "paid")
                .values(
                    status="failed",
                    attempts=P.c.attempts + r["tries"],
                    last_error=(r["error"] or "")[:1000],
                )
                .returning(P.c.id)
            ).scalars()
        )
    return marked


def finish_run(uow: UnitOfWork, run_id: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Transaction 2 (see the module docstring): set-based marks, one multi-row INSERT of the
    payout entries, a ``payout_paid`` event per keeper paid in this run. The report lists
    only what this run did: the transfers it paid and those that failed in it — a transfer
    an overlapping run paid first is not listed again."""
    now = clock.now()
    newly_paid = _mark_paid(uow, run_id, [r["id"] for r in results if r["status"] == "paid"], now)
    failed = _mark_failed(uow, (r for r in results if r["status"] != "paid"))
    post_many(
        uow.session,
        (
            (
                domain.payout_entry(
                    r["id"],
                    r["party_kind"],
                    r["party_id"],
                    int(r["amount_fen"]),
                    int(r.get("withheld_fen") or 0),
                ),
                now,
            )
            for r in results
            if r["id"] in newly_paid
        ),
    )
    keepers: list[dict[str, Any]] = []
    suppliers: list[dict[str, Any]] = []
    total = supplier_total = 0
    for r in results:
        if r["id"] not in newly_paid and r["id"] not in failed:
            continue  # another run, overlapping this one, paid it: not this run's doing
        row = {
            "payout_id": r["id"],
            "amount_fen": int(r["amount_fen"]),
            "gross_fen": int(r["amount_fen"]),
            "withheld_fen": int(r.get("withheld_fen") or 0),
            "net_fen": tax.net_fen(r),
            "status": r["status"],
            "reference": r["reference"],
            "attempts": r["tries"],
        }
        if r["party_kind"] == domain.KEEPER:
            keepers.append({"shop_id": r["party_id"], **row})
            if r["id"] in newly_paid:
                total += int(r["amount_fen"])
                uow.emit(
                    "payout_paid",
                    PayoutPaid(
                        payout_id=r["id"],
                        shop_id=r["party_id"],
                        amount_fen=int(r["amount_fen"]),
                        run_id=run_id,
                    ),
                )
        else:
            suppliers.append({"supplier_id": r["party_id"], **row})
            if r["id"] in newly_paid:
                supplier_total += int(r["amount_fen"])
    uow.session.execute(
        update(PayoutRun)
        .where(PayoutRun.id == run_id)
        .values(finished_at=now, total_fen=total + supplier_total)
    )
    return {
        "run_id": run_id,
        "payouts": keepers,
        "total_fen": total,
        "supplier_payouts": suppliers,
        "supplier_total_fen": supplier_total,
    }
