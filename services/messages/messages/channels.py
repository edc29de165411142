"""Channel adapters: SMS, WeChat subscription message, email — each a narrow interface with a
sandbox implementation that records what it "sent" (like identity's SMS adapter).

A real provider (Aliyun SMS, the WeChat subscribe-message API, an SMTP relay) implements
``Channel.send``; ``MESSAGES_CHANNELS`` in config.yml picks the implementation of each channel
(``sms=sandbox,wechat=sandbox,email=sandbox``). The sandbox writes this service's
``sandbox_messages`` table, read by ``GET /api/v1/admin/sandbox/messages`` in test mode.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import insert

from messages.models import SandboxMessage
from shared import clock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outgoing:
    channel: str
    to: str
    template: str
    text: str
    notification_id: int | None = None


class Channel(Protocol):
    def send(self, message: Outgoing) -> None: ...


def send_all(adapters: dict[str, Channel], outgoing: list[Outgoing]) -> set[tuple[int, str]]:
    """Send each message through its channel's adapter — in one call where the adapter takes a
    batch (``send_many``) — and return the ``(notification id, channel)`` pairs that failed
    (one provider's trouble never stops the others)."""
    failed: set[tuple[int, str]] = set()
    by_channel: dict[str, list[Outgoing]] = {}
    for m in outgoing:
        by_channel.setdefault(m.channel, []).append(m)
    for name, messages in by_channel.items():
        adapter = adapters[name]
        many = getattr(adapter, "send_many", None)
        try:
            if many is not None:
                many(messages)
                continue
        except Exception:
            log.exception("channel %s could not take a batch of %d", name, len(messages))
            failed |= {(m.notification_id or 0, name) for m in messages}
            continue
        for m in messages:
            try:
                adapter.send(m)
            except Exception:
                log.exception("notification %s not sent by %s", m.notification_id, name)
                failed.add((m.notification_id or 0, name))
    return failed


class SandboxChannel:
    """Behaves like a provider that accepts every message; keeps a copy of each."""

    def __init__(self, db: Any, channel: str):
        self.db = db
        self.channel = channel

    def send(self, message: Outgoing) -> None:
        self.send_many([message])

    def send_many(self, messages: list[Outgoing]) -> None:
        """A batch in one transaction (a real provider's batch API plays this part)."""
        now = clock.now()
        with self.db.unit_of_work() as uow:
            uow.session.execute(
                insert(SandboxMessage),
                [
                    dict(
                        channel=m.channel,
                        to=m.to,
                        template=m.template,
                        text=m.text,
                        notification_id=m.notification_id,
                        created_at=now,
                    )
                    for m in messages
                ],
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
