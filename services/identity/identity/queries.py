"""Reads of the identity service and their serialisers, apart from the commands."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from identity.models import Account, SandboxMessage
from shared import clock


def account_of(session: Any, role: str, phone: str) -> int | None:
    """The subject id identity already knows for this phone (None: ask shop/catalog)."""
    return session.scalars(
        select(Account.subject_id).where(Account.role == role, Account.phone == phone)
    ).first()


def message_dict(m: SandboxMessage) -> dict:
    return {
        "channel": m.channel,
        "to": m.to,
        "template": m.template,
        "text": m.text,
        "created_at": clock.iso(clock.as_utc(m.created_at)),
    }


def sandbox_messages(session: Any, to: str | None, limit: int) -> dict:
    """Every message the sandbox adapters sent, newest first (``to``: one recipient)."""
    query = select(SandboxMessage).order_by(SandboxMessage.id.desc()).limit(limit)
    if to:
        query = query.where(SandboxMessage.to == to)
    return {"items": [message_dict(m) for m in session.scalars(query).all()]}
