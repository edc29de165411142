"""The payout-provider adapter: the one place that moves money out of the platform.

``PayoutProvider.transfer(key, party_kind, party_id, amount_fen)`` either returns a
``TransferResult`` or raises ``TransferFailed`` (the provider refused; retry later) or
``TransferTimeout`` (no answer: the money may or may not have moved). Every call carries an
idempotency key (one per payout row), and a provider must answer a repeated key with the first
result without moving money again — that is what makes re-running an interrupted payout run safe.

``SandboxPayoutProvider`` behaves like such a provider: it books transfers by key in its own
table (its own connection and transaction, like a remote system would), and can be configured
to fail or to time out for some parties, always or for the first N attempts of each key, so
tests are deterministic. A timeout books the transfer *and then* raises: the worst case, money
moved but the caller does not know.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Table, select
from sqlalchemy.engine import Engine

from payouts.models import SandboxTransfer
from shared import clock


class TransferFailed(Exception):
    """The provider refused the transfer; nothing moved. Retryable."""


class TransferTimeout(Exception):
    """No answer in time: the outcome is unknown. Retry with the same key to learn it."""


@dataclass(frozen=True)
class TransferResult:
    reference: str
    replayed: bool = False


class PayoutProvider(Protocol):
    def transfer(
        self, key: str, party_kind: str, party_id: int, amount_fen: int
    ) -> TransferResult: ...


def parse_parties(spec: str | Iterable[str] | None) -> frozenset[str]:
    """``"keeper:12, supplier:*"`` / ``"*"`` → a set of ``kind:id`` patterns."""
    if spec is None:
        return frozenset()
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    return frozenset(s.strip() for s in items if s and s.strip())


def _matches(patterns: frozenset[str], kind: str, party_id: int) -> bool:
    return bool(patterns) and (
        "*" in patterns or f"{kind}:*" in patterns or f"{kind}:{party_id}" in patterns
    )


class SandboxPayoutProvider:
    table: Table = SandboxTransfer.__table__  # type: ignore[assignment]

    def __init__(
        self,
        engine: Engine,
        fail: str | Iterable[str] | None = None,
        timeout: str | Iterable[str] | None = None,
        fail_times: int = 0,
    ):
        self.engine = engine
        self.configure(fail, timeout, fail_times)
        self._lock = threading.Lock()
        self._attempts: dict[str, int] = {}

    def configure(self, fail=None, timeout=None, fail_times: int = 0) -> dict:
        """``fail_times`` = 0: the configured parties fail on every attempt; N: only on the
        first N attempts of each key."""
        self.fail = parse_parties(fail)
        self.timeout = parse_parties(timeout)
        self.fail_times = int(fail_times or 0)
        return {
            "fail": sorted(self.fail),
            "timeout": sorted(self.timeout),
            "fail_times": self.fail_times,
        }

    def _booked(self, key: str):
        with self.engine.connect() as conn:
            return conn.execute(
                select(self.table.c.reference).where(self.table.c.idempotency_key == key)
            ).scalar_one_or_none()

    def _insert(self) -> Any:
        """``INSERT … ON CONFLICT DO NOTHING`` into the sandbox's book."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(self.table).on_conflict_do_nothing()
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(self.table).on_conflict_do_nothing()

    def _book(self, key: str, kind: str, party_id: int, amount_fen: int) -> tuple[str, bool]:
        """Book the transfer under its key in one statement; (reference, replayed)."""
        with self.engine.begin() as conn:
            reference = conn.execute(
                self._insert()
                .values(
                    idempotency_key=key,
                    party_kind=kind,
                    party_id=party_id,
                    amount_fen=amount_fen,
                    reference=f"sbx-{key}",
                    created_at=clock.real_now(),
                )
                .returning(self.table.c.reference)
            ).scalar_one_or_none()
            if reference is not None:
                return reference, False
            return conn.execute(
                select(self.table.c.reference).where(self.table.c.idempotency_key == key)
            ).scalar_one(), True

    def _attempt(self, key: str) -> int:
        with self._lock:
            self._attempts[key] = self._attempts.get(key, 0) + 1
            return self._attempts[key]

    def transfer(self, key: str, party_kind: str, party_id: int, amount_fen: int) -> TransferResult:
        attempt = self._attempt(key)
        misbehave = self.fail_times == 0 or attempt <= self.fail_times
        if misbehave and _matches(self.fail, party_kind, party_id):
            existing = self._booked(key)
            if existing is not None:  # a repeat of a transfer that went through: first result
                return TransferResult(existing, replayed=True)
            raise TransferFailed(f"sandbox refused transfer {key} (attempt {attempt})")
        reference, replayed = self._book(key, party_kind, party_id, amount_fen)
        if not replayed and misbehave and _matches(self.timeout, party_kind, party_id):
            raise TransferTimeout(f"sandbox timed out on transfer {key} (attempt {attempt})")
        return TransferResult(reference, replayed)

    def transfers(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(self.table))]
