"""The sign-in rules of PRODUCT.md ("People and sign-in"), in plain Python (no nameko, no SQL).

* A one-time code: ``code_length`` (6) digits, drawn from a CSPRNG, stored only as an HMAC
  (``hash_code``), valid ``code_ttl_seconds`` (300), used once, dead after ``max_attempts`` (5)
  wrong guesses.
* Sending codes is rate limited per phone (one per ``phone_cooldown_seconds``, at most
  ``phone_max_per_window`` per ``window_seconds``) and per client address
  (``address_max_per_window`` per window): over a limit the answer is 429 with Retry-After.
* Sessions: a short-lived access token (minted by the gateway) and a refresh token (256 random
  bits, stored as a SHA-256) that rotates on every use, lives ``refresh_ttl_seconds`` (30 days),
  and whose reuse after rotation revokes the whole family (a stolen token is then useless).
* Answers never reveal whether a phone has an account: every well-formed phone gets a code and
  a 202; a right code for a phone without an account is refused like a wrong one.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.errors import ValidationFailed
from shared.rules import ConfiguredRules

ROLES = ("member", "supplier")
PHONE_RE = re.compile(r"^1[3-9]\d{9}$")


@dataclass(frozen=True)
class IdentityRules(ConfiguredRules):
    """Every number of sign-in (config.yml ``RULES``; defaults are PRODUCT.md's)."""

    code_length: int = 6
    code_ttl_seconds: int = 300
    max_attempts: int = 5
    phone_cooldown_seconds: int = 60
    phone_max_per_window: int = 5
    address_max_per_window: int = 30
    window_seconds: int = 3600
    refresh_ttl_seconds: int = 30 * 86400


def aware(moment: datetime) -> datetime:
    """Databases (SQLite) may hand back naive datetimes: they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- phones -------------------------------------------------------------------------------------
def normalize_phone(phone: str) -> str:
    """A mainland mobile number, 11 digits ``1[3-9]…``; spaces, dashes and a +86/0086 prefix are
    removed (the same rule as the shop's members). Anything else is 422 ``phone``."""
    cleaned = re.sub(r"[\s\-]", "", str(phone or ""))
    for prefix in ("+86", "0086"):
        if cleaned.startswith(prefix):
            cleaned = cleaned[len(prefix) :]
    if not PHONE_RE.match(cleaned):
        raise ValidationFailed(
            "the phone number is not a mainland mobile number",
            details=[{"field": "phone", "message": "expected 11 digits matching 1[3-9]xxxxxxxxx"}],
        )
    return cleaned


# --- one-time codes -----------------------------------------------------------------------------
def new_code(rules: IdentityRules) -> str:
    """``code_length`` random digits ("004217" keeps its zeros)."""
    return "".join(secrets.choice("0123456789") for _ in range(rules.code_length))


def hash_code(secret: str, phone: str, role: str, code: str) -> str:
    """The stored form of a code: an HMAC keyed by the service secret and bound to the phone
    and role, so a leaked table cannot be brute-forced over the 10^6 codes offline."""
    message = f"{role}:{phone}:{code}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def code_matches(secret: str, phone: str, role: str, code: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_code(secret, phone, role, code.strip()), stored_hash)


def code_expires_at(now: datetime, rules: IdentityRules) -> datetime:
    return now + timedelta(seconds=rules.code_ttl_seconds)


def code_usable(
    now: datetime,
    expires_at: datetime,
    used_at: datetime | None,
    attempts: int,
    rules: IdentityRules,
) -> bool:
    """A code works once, before it expires, while fewer than ``max_attempts`` guesses failed."""
    return used_at is None and now < expires_at and attempts < rules.max_attempts


def sms_text(code: str, rules: IdentityRules) -> str:
    minutes = max(1, rules.code_ttl_seconds // 60)
    return f"【小铺】验证码 {code}，{minutes} 分钟内有效。请勿告诉他人。"


# --- rate limits --------------------------------------------------------------------------------
def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


def phone_retry_after(now: datetime, sent: Iterable[datetime], rules: IdentityRules) -> int | None:
    """Seconds this phone must wait before another code (None: it may have one now). ``sent``
    are the times codes were sent to it within the window."""
    recent = sorted(t for t in sent if t > now - timedelta(seconds=rules.window_seconds))
    if recent:
        free_at = recent[-1] + timedelta(seconds=rules.phone_cooldown_seconds)
        if free_at > now:
            return _seconds_until(free_at, now)
    if len(recent) >= rules.phone_max_per_window:
        oldest = recent[-rules.phone_max_per_window]
        return _seconds_until(oldest + timedelta(seconds=rules.window_seconds), now)
    return None


def address_retry_after(
    now: datetime, sent: Iterable[datetime], rules: IdentityRules
) -> int | None:
    """Seconds this client address must wait before another code (None: it may ask now)."""
    recent = sorted(t for t in sent if t > now - timedelta(seconds=rules.window_seconds))
    if len(recent) >= rules.address_max_per_window:
        oldest = recent[-rules.address_max_per_window]
        return _seconds_until(oldest + timedelta(seconds=rules.window_seconds), now)
    return None


def window_start(now: datetime, rules: IdentityRules) -> datetime:
    return now - timedelta(seconds=rules.window_seconds)


# --- refresh tokens -----------------------------------------------------------------------------
def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Refresh tokens carry 256 random bits: a plain SHA-256 is enough to store them."""
    return hashlib.sha256(token.encode()).hexdigest()


def refresh_expires_at(now: datetime, rules: IdentityRules) -> datetime:
    return now + timedelta(seconds=rules.refresh_ttl_seconds)


def refresh_verdict(
    now: datetime,
    expires_at: datetime,
    rotated_at: datetime | None,
    revoked_at: datetime | None,
) -> str:
    """What presenting this refresh token means: ``ok`` (rotate it), ``reused`` (it was already
    rotated: someone replays an old token — revoke the family), ``revoked`` or ``expired``."""
    if revoked_at is not None:
        return "revoked"
    if rotated_at is not None:
        return "reused"
    if now >= expires_at:
        return "expired"
    return "ok"
