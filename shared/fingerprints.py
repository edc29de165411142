"""Fingerprints: what services tell each other about a person instead of their phone or address.

A fingerprint is ``HMAC-SHA256(platform salt, kind + ":" + normal form)`` in hex (32 characters).
Two services holding the same salt turn the same phone into the same fingerprint, so payouts can
see that a buyer's delivery phone is the keeper's phone without ever learning either number, and
a leaked read model holds nothing to dial. The salt is ``XIAOPU_FINGERPRINT_SALT`` (``make run``
generates it into ``var/fingerprint.salt`` like the admin token); production refuses to run
without one, elsewhere a fixed development salt stands in (with a warning).

Normal forms (so formatting never hides a match):
* phone   — digits only, a leading +86 / 0086 / 86 country code dropped (mainland mobiles are
            11 digits): "+86 139-1234-5678" and "13912345678" are the same phone;
* address — ``shared.text.match_form`` (NFKC, case-folded, no zero-width or white space), so
            "杭州市 西湖区 1号" and "杭州市西湖区１号" are the same address;
* visitor, payee account — ``match_form`` of the identifier.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from typing import Any

from shared.text import match_form

log = logging.getLogger(__name__)

SALT_KEY = "XIAOPU_FINGERPRINT_SALT"
DEVELOPMENT_SALT = "xiaopu-development-fingerprint-salt"  # never used in production
KINDS = ("phone", "address", "visitor", "payee")
_NON_DIGITS = re.compile(r"\D+")


def normal_phone(raw: str) -> str:
    digits = _NON_DIGITS.sub("", raw)
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            return digits[len(prefix) :]
    return digits


def normal_form(kind: str, raw: str) -> str:
    if kind == "phone":
        return normal_phone(raw)
    return match_form(raw)


class Fingerprinter:
    """Turns a raw phone, address, visitor id or payee account into its fingerprint."""

    def __init__(self, salt: str):
        if not salt:
            raise ValueError("a fingerprint salt is required")
        self._key = salt.encode("utf-8")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Fingerprinter:
        """The fingerprinter of the configured salt (one per salt per process: a checkout asks
        for it every time). Without a salt outside production: the development salt, said
        once per process in a WARNING (it was a line per checkout)."""
        salt = str(config.get(SALT_KEY) or "")
        if not salt:
            if str(config.get("XIAOPU_ENV", "")).lower() == "production":
                raise RuntimeError(f"{SALT_KEY} must be set in production")
            if DEVELOPMENT_SALT not in _MADE:
                log.warning("%s is not set: using the development salt", SALT_KEY)
            salt = DEVELOPMENT_SALT
        made = _MADE.get(salt)
        if made is None:
            made = _MADE[salt] = cls(salt)
        return made

    def of(self, kind: str, raw: str | None) -> str | None:
        """The fingerprint of ``raw`` as a ``kind``; None for nothing (empty after normalising)."""
        if kind not in KINDS:
            raise ValueError(f"unknown fingerprint kind {kind!r}")
        if raw is None:
            return None
        normal = normal_form(kind, str(raw))
        if not normal:
            return None
        digest = hmac.new(self._key, f"{kind}:{normal}".encode(), hashlib.sha256)
        return digest.hexdigest()[:32]

    def phone(self, raw: str | None) -> str | None:
        return self.of("phone", raw)

    def address(self, raw: str | None) -> str | None:
        return self.of("address", raw)

    def visitor(self, raw: str | None) -> str | None:
        return self.of("visitor", raw)

    def payee(self, raw: str | None) -> str | None:
        return self.of("payee", raw)


_MADE: dict[str, Fingerprinter] = {}  # Fingerprinter.from_config's, by salt
