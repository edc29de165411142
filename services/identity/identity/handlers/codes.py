"""One-time codes: send one (rate limited), check one (attempts counted)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from identity import domain
from identity.domain import IdentityRules
from identity.models import OtpCode
from identity.sms import Message
from shared.contracts.identity import RequestCode
from shared.errors import TooManyRequests


@dataclass(frozen=True)
class CodeSent:
    message: Message
    expires_in: int


def _too_many(what: str, seconds: int) -> TooManyRequests:
    return TooManyRequests(
        f"too many codes requested for this {what}; try again in {seconds} s",
        details={"retry_after": seconds, "limit": what},
        code="too_many_codes",
    )


def request_code(
    uow: Any, rules: IdentityRules, secret: str, cmd: RequestCode, now: datetime
) -> CodeSent:
    """Store a new code for the phone (older ones stop counting: only the newest is checked)
    and hand back the message to send. Every well-formed phone gets one, registered or not."""
    phone = domain.normalize_phone(cmd.phone)
    s = uow.session
    since = domain.window_start(now, rules)
    sent = s.scalars(
        select(OtpCode.created_at).where(OtpCode.phone == phone, OtpCode.created_at > since)
    ).all()
    wait = domain.phone_retry_after(now, [domain.aware(t) for t in sent], rules)
    if wait is not None:
        raise _too_many("phone", wait)
    if cmd.client:
        from_client = s.scalars(
            select(OtpCode.created_at).where(
                OtpCode.client == cmd.client, OtpCode.created_at > since
            )
        ).all()
        wait = domain.address_retry_after(now, [domain.aware(t) for t in from_client], rules)
        if wait is not None:
            raise _too_many("address", wait)
    code = domain.new_code(rules)
    s.add(
        OtpCode(
            phone=phone,
            role=cmd.role,
            code_hash=domain.hash_code(secret, phone, cmd.role, code),
            client=cmd.client,
            created_at=now,
            expires_at=domain.code_expires_at(now, rules),
            attempts=0,
            used_at=None,
        )
    )
    return CodeSent(
        Message("sms", phone, "otp", domain.sms_text(code, rules)), rules.code_ttl_seconds
    )


def check_code(
    uow: Any,
    rules: IdentityRules,
    secret: str,
    phone: str,
    role: str,
    code: str,
    now: datetime,
) -> int | None:
    """The id of the newest code of (phone, role) when ``code`` is it and it is still usable;
    None otherwise, after counting the failed attempt. The code is not consumed here
    (``sessions.start`` does that once the account is known)."""
    row = newest_code(uow, phone, role)
    if row is None:
        return None
    usable = domain.code_usable(now, domain.aware(row.expires_at), row.used_at, row.attempts, rules)
    if usable and domain.code_matches(secret, phone, role, code, row.code_hash):
        return row.id
    if usable:
        row.attempts += 1
    return None


def count_failed_attempt(uow: Any, code_id: int) -> None:
    """A right code for a phone that has no account counts as a failed attempt, exactly like a
    wrong code, so the two cannot be told apart."""
    row = uow.session.get(OtpCode, code_id)
    if row is not None:
        row.attempts += 1


def newest_code(uow: Any, phone: str, role: str) -> OtpCode | None:
    query = (
        select(OtpCode)
        .where(OtpCode.phone == phone, OtpCode.role == role)
        .order_by(OtpCode.created_at.desc(), OtpCode.id.desc())
        .limit(1)
    )
    if uow.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return uow.session.scalars(query).first()
