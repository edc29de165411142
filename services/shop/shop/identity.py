"""Shop verification's identity check: a narrow adapter with a sandbox implementation.

A real provider (a KYC / face-match service) would implement ``IdentityCheck.verify`` by calling
out; the sandbox behaves like one that passes exactly the members whose real-name verification
already passed. ``SHOP_IDENTITY_PROVIDER`` in config.yml picks the implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class IdentitySubject:
    member_id: int
    nickname: str
    phone: str
    real_name_verified: bool
    real_name: str | None = None


@dataclass(frozen=True)
class IdentityRecord:
    """What the identity provider vouches for: the member's verified real name (None when
    real-name verification has not passed)."""

    member_id: int
    real_name_verified: bool
    real_name: str | None


@dataclass(frozen=True)
class IdentityResult:
    passed: bool
    reference: str
    reason: str | None = None


class IdentityCheck(Protocol):
    def verify(self, subject: IdentitySubject, shop_id: int) -> IdentityResult: ...

    def record(self, subject: IdentitySubject) -> IdentityRecord: ...


class SandboxIdentityCheck:
    """Passes real-name-verified members, refuses the others (like the real provider would)."""

    name = "sandbox"

    def verify(self, subject: IdentitySubject, shop_id: int) -> IdentityResult:
        ref = f"sandbox-{shop_id}-{subject.member_id}"
        if subject.real_name_verified:
            return IdentityResult(True, ref)
        return IdentityResult(False, ref, "the member's real-name verification has not passed")

    def record(self, subject: IdentitySubject) -> IdentityRecord:
        """The verified name is the one declared at registration, once verification passed."""
        verified = subject.real_name_verified and bool(subject.real_name)
        return IdentityRecord(subject.member_id, verified, subject.real_name if verified else None)


PROVIDERS = {"sandbox": SandboxIdentityCheck}


@dataclass(frozen=True)
class IdentityStanding:
    """What the identity provider knows of a person: credit score and real-name status."""

    credit_score: int
    real_name_verified: bool
    real_name: str | None = None


class IdentityRecords(Protocol):
    def record(
        self,
        phone: str,
        declared_score: int | None,
        declared_verified: bool | None,
        declared_name: str | None = None,
    ) -> IdentityStanding: ...


class SandboxIdentityRecords:
    """The sandbox knows nobody: in test mode it takes the values the client declared at
    registration (so tests can make eligible and ineligible keepers); outside test mode declared
    values are ignored and everyone starts at 0 / not verified, so nobody can declare
    themselves eligible to open a shop. A real provider looks the phone up instead."""

    name = "sandbox"

    def __init__(self, accept_declared: bool):
        self.accept_declared = accept_declared

    def record(
        self,
        phone: str,
        declared_score: int | None,
        declared_verified: bool | None,
        declared_name: str | None = None,
    ) -> IdentityStanding:
        if self.accept_declared:
            score, verified = int(declared_score or 0), bool(declared_verified)
            return IdentityStanding(score, verified, declared_name)
        return IdentityStanding(0, False, None)


def identity_records(config: dict) -> IdentityRecords:
    from shared.config import test_mode

    name = str(config.get("SHOP_IDENTITY_PROVIDER") or "sandbox").strip().lower()
    if name != "sandbox":
        raise SystemExit(f"unknown SHOP_IDENTITY_PROVIDER {name!r}; known: ['sandbox']")
    return SandboxIdentityRecords(accept_declared=test_mode(config))


def identity_check(config: dict) -> IdentityCheck:
    name = str(config.get("SHOP_IDENTITY_PROVIDER") or "sandbox").strip().lower()
    try:
        return PROVIDERS[name]()
    except KeyError as exc:
        raise SystemExit(
            f"unknown SHOP_IDENTITY_PROVIDER {name!r}; known: {sorted(PROVIDERS)}"
        ) from exc
