"""Sessions: start one with a checked code, rotate its refresh token, end it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from identity import domain
from identity.domain import IdentityRules
from identity.models import Account, OtpCode, RefreshToken


@dataclass(frozen=True)
class Session:
    role: str
    subject_id: int
    refresh_token: str

    def as_dict(self, registered: bool = False) -> dict:
        return {
            "role": self.role,
            "id": self.subject_id,
            "refresh_token": self.refresh_token,
            "registered": registered,
        }


def _issue(
    uow: Any, rules: IdentityRules, role: str, subject_id: int, family: str, now: datetime
) -> Session:
    token = domain.new_refresh_token()
    uow.session.add(
        RefreshToken(
            token_hash=domain.hash_token(token),
            family=family,
            role=role,
            subject_id=subject_id,
            created_at=now,
            expires_at=domain.refresh_expires_at(now, rules),
        )
    )
    return Session(role, subject_id, token)


def remember_account(uow: Any, role: str, phone: str, subject_id: int, now: datetime) -> None:
    s = uow.session
    found = s.scalars(select(Account).where(Account.role == role, Account.phone == phone)).first()
    if found is None:
        s.add(Account(role=role, phone=phone, subject_id=subject_id, created_at=now))
    elif found.subject_id != subject_id:
        found.subject_id = subject_id


def start(
    uow: Any,
    rules: IdentityRules,
    code_id: int,
    phone: str,
    role: str,
    subject_id: int,
    now: datetime,
) -> Session | None:
    """Consume the code (once: a concurrent login with the same code gets None) and open a new
    session family for the account."""
    consumed = uow.session.execute(
        update(OtpCode).where(OtpCode.id == code_id, OtpCode.used_at.is_(None)).values(used_at=now)
    ).rowcount
    if consumed != 1:
        return None
    remember_account(uow, role, phone, subject_id, now)
    return _issue(uow, rules, role, subject_id, str(uuid.uuid4()), now)


def rotate(uow: Any, rules: IdentityRules, token: str, now: datetime) -> Session | None:
    """Exchange a refresh token for a new one of the same family. A token that was already
    rotated revokes its whole family (the thief and the owner both have to sign in again);
    None for every refusal."""
    s = uow.session
    query = select(RefreshToken).where(RefreshToken.token_hash == domain.hash_token(token))
    if s.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = s.scalars(query).first()
    if row is None:
        return None
    verdict = domain.refresh_verdict(
        now, domain.aware(row.expires_at), row.rotated_at, row.revoked_at
    )
    if verdict == "reused":
        revoke_family(uow, row.family, now)
    if verdict != "ok":
        return None
    row.rotated_at = now
    return _issue(uow, rules, row.role, row.subject_id, row.family, now)


def revoke_family(uow: Any, family: str, now: datetime) -> int:
    return uow.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount


def logout(uow: Any, role: str, subject_id: int, token: str | None, now: datetime) -> int:
    """Revoke the session of ``token`` when it is the caller's; without a token (or with one
    that is not theirs) every session of the caller. Answers how many tokens were revoked."""
    s = uow.session
    if token:
        row = s.scalars(
            select(RefreshToken).where(RefreshToken.token_hash == domain.hash_token(token))
        ).first()
        if row is not None and row.role == role and row.subject_id == subject_id:
            return revoke_family(uow, row.family, now)
    return s.execute(
        update(RefreshToken)
        .where(
            RefreshToken.role == role,
            RefreshToken.subject_id == subject_id,
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    ).rowcount
