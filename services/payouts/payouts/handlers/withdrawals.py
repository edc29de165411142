"""Withdrawals: a keeper asks to be paid now, and the keeper's payout mode.

A withdrawal is three steps, like a payout run, so no transfer is ever made inside a database
transaction:

1. ``request`` (a unit of work): checks the rules (``domain.withdrawal_refusal``) under a lock
   on the shop's ``payout_settings`` row (and, on PostgreSQL, the payout runs' advisory lock in
   shared mode, so a run and a withdrawal never both count the same balance), writes the row
   ``requested`` and posts ``withdrawal_requested`` (settleable → in transit) at once: two
   withdrawals arriving together are checked one after the other and can never exceed the
   balance.
2. ``transfer`` (no transaction): the payout provider under the withdrawal's own idempotency
   key (``domain.withdrawal_key``); a timeout is resolved by sending the same key again (the
   provider answers a repeated key with the first result and moves no money twice).
3. ``finish`` (a unit of work): ``paid`` (posting ``withdrawal_paid``: in transit → paid, fee,
   withheld tax) or ``failed`` (the amount stays in transit; ``retry`` repeats steps 2–3 with
   the same key). A withdrawal interrupted between the steps stays ``requested``; retrying it
   is just as safe.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from payouts import domain
from payouts.domain import PayoutRules
from payouts.handlers import holds
from payouts.handlers.journal import J, insert_ignoring_conflicts, is_postgres, post
from payouts.handlers.payout_runs import OPEN, PAYOUT_LOCK, P
from payouts.models import PayeeAccount, PayoutSettings, Withdrawal
from payouts.provider import PayoutProvider, TransferFailed, TransferTimeout
from shared import clock
from shared.db import UnitOfWork
from shared.errors import NotFound, ValidationFailed

S: Table = PayoutSettings.__table__  # type: ignore[assignment]
W: Table = Withdrawal.__table__  # type: ignore[assignment]
REQUESTED, PAID, FAILED = "requested", "paid", "failed"


def keeper_settings(uow: UnitOfWork, shop_id: int) -> PayoutSettings:
    """The shop's payout settings row, created if new, locked for this transaction (after the
    payout runs' lock in shared mode on PostgreSQL: withdrawals of different shops proceed
    together, a run waits for them and they for it)."""
    session = uow.session
    if is_postgres(session):
        session.execute(select(func.pg_advisory_xact_lock_shared(PAYOUT_LOCK)))
    session.execute(
        insert_ignoring_conflicts(session, S).values(shop_id=shop_id, payout_mode=domain.AUTO)
    )
    row = session.get(PayoutSettings, shop_id, with_for_update=True, populate_existing=True)
    assert row is not None  # inserted just above
    return row


def set_payout_mode(uow: UnitOfWork, shop_id: int, payout_mode: str) -> dict[str, Any]:
    row = keeper_settings(uow, shop_id)
    row.payout_mode = payout_mode
    row.updated_at = clock.now()
    uow.session.flush()
    return settings_view(row)


def settings_view(row: PayoutSettings) -> dict[str, Any]:
    return {"shop_id": int(row.shop_id), "payout_mode": row.payout_mode}


def available_fen(uow: UnitOfWork, shop_id: int) -> int:
    """Settleable, net of payout-run transfers to this keeper still open and of what settled
    orders under an open hold carry (``holds.held_settled_by_party``, as payout runs do)."""
    session = uow.session
    settleable = session.execute(
        select(func.coalesce(func.sum(J.c.amount_fen), 0)).where(
            J.c.account == domain.SETTLEABLE, J.c.party_id == shop_id
        )
    ).scalar_one()
    in_flight = session.execute(
        select(func.coalesce(func.sum(P.c.amount_fen), 0)).where(
            P.c.party_kind == domain.KEEPER, P.c.party_id == shop_id, P.c.status.in_(OPEN)
        )
    ).scalar_one()
    held = holds.held_settled_by_party(session, domain.KEEPER, shop_id).get(shop_id, 0)
    return int(settleable) - int(in_flight) - held


def request(
    uow: UnitOfWork, rules: PayoutRules, shop_id: int, member_id: int, amount_fen: int
) -> dict[str, Any]:
    """Step 1 (see the module docstring): the withdrawal, ``requested``, its amount in transit."""
    session = uow.session
    payee = session.get(PayeeAccount, (domain.MEMBER, member_id))
    if payee is None:
        raise ValidationFailed(
            "register a payee account (PUT /api/v1/me/payee) before withdrawing",
            details=[{"rule": "payee_account_required", "message": "no payee account"}],
            code="payee_account_required",
        )
    keeper_settings(uow, shop_id)  # from here on this shop's withdrawals take turns
    now = clock.now()
    day = domain.business_day(now)
    today = session.execute(
        select(func.coalesce(func.sum(W.c.amount_fen), 0)).where(
            W.c.shop_id == shop_id, W.c.business_day == day
        )
    ).scalar_one()
    refusal = domain.withdrawal_refusal(amount_fen, available_fen(uow, shop_id), int(today), rules)
    if refusal is not None:
        code, message = refusal
        raise ValidationFailed(message, details=[{"rule": code, "message": message}], code=code)
    wid = domain.new_withdrawal_id()
    while session.get(Withdrawal, wid) is not None:  # a collision in 2^31: draw again
        wid = domain.new_withdrawal_id()
    split = domain.labour_income_withholding(amount_fen, rules)
    row = Withdrawal(
        id=wid,
        shop_id=shop_id,
        member_id=member_id,
        amount_fen=amount_fen,
        fee_fen=rules.withdrawal_fee_fen,
        withheld_fen=split.withheld_fen,
        net_fen=split.net_fen,
        status=REQUESTED,
        business_day=day,
        channel=payee.channel,
        account_masked=domain.mask_account(payee.account),
        attempts=0,
        created_at=now,
    )
    session.add(row)
    session.flush()
    debit = domain.withdrawal_debit_fen(amount_fen, rules)
    post(session, domain.withdrawal_requested_entry(wid, shop_id, debit), now)
    return withdrawal_view(row)


def load(session: Session, shop_id: int, withdrawal_id: int) -> Withdrawal:
    """The shop's withdrawal; 404 for a missing one and for another shop's alike."""
    row = session.get(Withdrawal, withdrawal_id)
    if row is None or int(row.shop_id) != shop_id:
        raise NotFound(f"withdrawal {withdrawal_id} not found", code="withdrawal_not_found")
    return row


def transfer(provider: PayoutProvider, w: dict[str, Any], attempts: int) -> dict[str, Any]:
    """Step 2, outside any transaction: send the net under the withdrawal's key, up to
    ``attempts`` times; a timeout is answered by asking again with the same key."""
    outcome: dict[str, Any] = {"status": FAILED, "reference": None, "error": None, "tries": 0}
    for _ in range(max(1, attempts)):
        outcome["tries"] += 1
        try:
            res = provider.transfer(
                domain.withdrawal_key(w["id"]), domain.KEEPER, w["shop_id"], w["net_fen"]
            )
        except (TransferFailed, TransferTimeout) as exc:
            outcome["error"] = f"{type(exc).__name__}: {exc}"
            continue
        outcome.update(status=PAID, reference=res.reference, error=None)
        break
    return outcome


def finish(uow: UnitOfWork, withdrawal_id: int, outcome: dict[str, Any]) -> dict[str, Any]:
    """Step 3: record the outcome; a paid withdrawal posts ``withdrawal_paid`` once."""
    session = uow.session
    row = session.get(Withdrawal, withdrawal_id, with_for_update=True, populate_existing=True)
    assert row is not None  # step 1 committed it
    if row.status == PAID:  # a concurrent retry finished first: nothing more to do
        return withdrawal_view(row)
    now = clock.now()
    row.attempts += int(outcome["tries"])
    if outcome["status"] == PAID:
        row.status, row.provider_ref, row.paid_at, row.last_error = (
            PAID,
            outcome["reference"],
            now,
            None,
        )
        split = domain.Withholding(int(row.amount_fen), int(row.withheld_fen), int(row.net_fen))
        debit = int(row.amount_fen) + int(row.fee_fen)
        post(
            session,
            domain.withdrawal_paid_entry(
                int(row.id), int(row.shop_id), debit, int(row.fee_fen), split
            ),
            now,
        )
    else:
        row.status, row.last_error = FAILED, (outcome["error"] or "")[:1000]
    session.flush()
    return withdrawal_view(row)


def withdrawal_view(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "shop_id": int(row.shop_id),
        "status": row.status,
        "amount_fen": int(row.amount_fen),
        "fee_fen": int(row.fee_fen),
        "gross_fen": int(row.amount_fen),
        "withheld_fen": int(row.withheld_fen),
        "net_fen": int(row.net_fen),
        "channel": row.channel,
        "account": row.account_masked,
        "attempts": int(row.attempts),
        "reference": row.provider_ref,
        "last_error": row.last_error,
        "created_at": clock.iso(row.created_at),
        "paid_at": clock.iso(row.paid_at),
    }
