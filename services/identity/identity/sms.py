"""The SMS adapter: a narrow interface with a sandbox implementation.

A real provider (Aliyun SMS, Tencent Cloud SMS, ...) implements ``SmsSender.send`` by calling
out; the sandbox records every message in this service's ``sandbox_messages`` table, where the
test-mode endpoint ``GET /api/v1/admin/sandbox/messages`` reads them. ``SMS_PROVIDER`` in
config.yml picks the implementation. Messages are sent after the code's transaction committed,
so a code that was never stored is never sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from identity.models import SandboxMessage
from shared import clock


@dataclass(frozen=True)
class Message:
    channel: str
    to: str
    template: str
    text: str


class SmsSender(Protocol):
    def send(self, message: Message) -> None: ...


class SandboxSms:
    """Behaves like a provider that accepts every message; keeps a copy of each."""

    name = "sandbox"

    def __init__(self, db: Any):
        self.db = db

    def send(self, message: Message) -> None:
        with self.db.unit_of_work() as uow:
            uow.session.add(
                SandboxMessage(
                    channel=message.channel,
                    to=message.to,
                    template=message.template,
                    text=message.text,
                    created_at=clock.now(),
                )
            )


PROVIDERS = {"sandbox": SandboxSms}


def sms_sender(config: dict, db: Any) -> SmsSender:
    name = str(config.get("SMS_PROVIDER") or "sandbox").strip().lower()
    try:
        return PROVIDERS[name](db)
    except KeyError:
        raise SystemExit(f"unknown SMS_PROVIDER {name!r}; known: {sorted(PROVIDERS)}") from None
