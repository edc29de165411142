"""Payee accounts: where a member (keeper) or a supplier is paid.

``set_payee`` registers or changes the account after the entrypoint fetched the name on the
party's identity record (members: shop's identity record; suppliers: catalog's registered
name). The account is checked per channel (``domain.payee_account``), the name must match
(``domain.names_match``), and every registration or change writes a ``payee_changes`` row with
the account masked. Nothing is recorded when the same account is registered again.
"""

from __future__ import annotations

from typing import Any

from payouts import domain
from payouts.models import PayeeAccount, PayeeChange
from shared import clock
from shared.db import UnitOfWork
from shared.errors import ValidationFailed


def set_payee(
    uow: UnitOfWork,
    party_kind: str,
    party_id: int,
    name_on_record: str | None,
    channel: str,
    account: str,
    real_name: str,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """Register or change the party's payee account; the stored answer (masked). A member's
    account ``fingerprint`` feeds the fraud rule ``same_payee`` (a buyer paid into the
    keeper's own account)."""
    try:
        stored = domain.payee_account(channel, account)
    except ValueError as exc:
        raise ValidationFailed(
            str(exc),
            details=[{"field": "account", "message": str(exc)}],
            code="invalid_payee_account",
        ) from None
    if not name_on_record:
        raise ValidationFailed(
            "there is no verified real name on the identity record to match the payee against",
            details=[{"field": "real_name", "message": "identity record has no verified name"}],
            code="real_name_not_verified",
        )
    if not domain.names_match(real_name, name_on_record):
        raise ValidationFailed(
            "the account holder's name does not match the identity record",
            details=[{"field": "real_name", "message": "does not match the identity record"}],
            code="payee_name_mismatch",
        )
    session = uow.session
    now = clock.now()
    row = session.get(PayeeAccount, (party_kind, party_id), with_for_update=True)
    if row is None:
        row = PayeeAccount(
            party_kind=party_kind,
            party_id=party_id,
            channel=channel,
            account=stored,
            real_name=real_name.strip(),
            version=1,
            updated_at=now,
        )
        session.add(row)
        action = "registered"
    elif (row.channel, row.account, row.real_name) == (channel, stored, real_name.strip()):
        return payee_view(row)
    else:
        row.channel, row.account, row.real_name = channel, stored, real_name.strip()
        row.version += 1
        row.updated_at = now
        action = "changed"
    session.add(
        PayeeChange(
            party_kind=party_kind,
            party_id=party_id,
            version=row.version,
            action=action,
            channel=channel,
            account_masked=domain.mask_account(stored),
            real_name=row.real_name,
            changed_at=now,
        )
    )
    session.flush()
    if party_kind == domain.MEMBER and fingerprint:
        from payouts.handlers import fraud

        fraud.record_fingerprint(session, party_id, "payee", fingerprint, "payee", now)
    return payee_view(row)


def payee_view(row: PayeeAccount) -> dict[str, Any]:
    return {
        "party_kind": row.party_kind,
        "party_id": int(row.party_id),
        "channel": row.channel,
        "account": domain.mask_account(row.account),
        "real_name": row.real_name,
        "version": int(row.version),
        "updated_at": clock.iso(row.updated_at),
    }
