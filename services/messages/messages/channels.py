"""Channel adapters: SMS, WeChat subscription message, email — each a narrow interface with a
sandbox implementation that records what it "sent" (like identity's SMS adapter).

A real provider (Aliyun SMS, the WeChat subscribe-message API, an SMTP relay) implements
``Channel.send``; ``MESSAGES_CHANNELS`` in config.yml picks the implementation of each channel
(``sms=sandbox,wechat=sandbox,email=sandbox``). The sandbox writes this service's
``sandbox_messages`` table, read by ``GET /api/v1/admin/sandbox/messages`` in test mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from messages.models import SandboxMessage
from shared import clock


@dataclass(frozen=True)
class Outgoing:
    channel: str
    to: str
    template: str
    text: str
    notification_id: int | None = None


class Channel(Protocol):
    def send(self, message: Outgoing) -> None: ...


class SandboxChannel:
    """Behaves like a provider that accepts every message; keeps a copy of each."""

    def __init__(self, db: Any, channel: str):
        self.db = db
        self.channel = channel

    def send(self, message: Outgoing) -> None:
        with self.db.unit_of_work() as uow:
            uow.session.add(
                SandboxMessage(
                    channel=message.channel,
                    to=message.to,
                    template=message.template,
                    text=message.text,
                    notification_id=message.notification_id,
                    created_at=clock.now(),
                )
            )


PROVIDERS = {"sandbox": SandboxChannel}


def channels(config: dict, db: Any) -> dict[str, Channel]:
    """Each channel's adapter from ``MESSAGES_CHANNELS`` (default: every channel sandboxed)."""
    chosen = {"sms": "sandbox", "wechat": "sandbox", "email": "sandbox"}
    for part in str(config.get("MESSAGES_CHANNELS") or "").split(","):
        name, _, provider = part.partition("=")
        if name.strip() and provider.strip():
            chosen[name.strip()] = provider.strip().lower()
    out: dict[str, Channel] = {}
    for name, provider in chosen.items():
        try:
            out[name] = PROVIDERS[provider](db, name)
        except KeyError:
            raise SystemExit(
                f"unknown provider {provider!r} for channel {name}; known: {sorted(PROVIDERS)}"
            ) from None
    return out
