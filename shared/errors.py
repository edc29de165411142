"""Domain errors, carried over RPC as themselves and mapped to HTTP statuses by the gateway.

A service raises ``NotFound("shop 12 not found")``; nameko serialises it, the gateway's RPC
client deserialises it back into ``NotFound`` (they are registered with nameko), and the
gateway's error handler turns it into ``{"error": {"code", "message", "details"}}`` with the
status below. Every class has ``args == (message, details, code)`` so it survives the trip.
"""

from __future__ import annotations

import json
from typing import Any

from nameko.exceptions import deserialize_to_instance

# nameko turns every non-string exception argument into a string (None → "None", 3 → "3"),
# so details travel as JSON text behind this marker and come back with their types.
_PACKED = "\x00json:"


class XiaopuError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, details: Any = None, code: str | None = None):
        if isinstance(details, str) and details.startswith(_PACKED):
            details = json.loads(details[len(_PACKED) :])
        if code and code != "None":
            self.code = code
        super().__init__(
            message, _PACKED + json.dumps(details, ensure_ascii=False, default=str), self.code
        )
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message

    def envelope(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


@deserialize_to_instance
class BadRequest(XiaopuError):
    status = 400
    code = "bad_request"


@deserialize_to_instance
class Unauthorized(XiaopuError):
    status = 401
    code = "unauthorized"


@deserialize_to_instance
class Forbidden(XiaopuError):
    status = 403
    code = "forbidden"


@deserialize_to_instance
class NotFound(XiaopuError):
    status = 404
    code = "not_found"


@deserialize_to_instance
class Conflict(XiaopuError):
    status = 409
    code = "conflict"


@deserialize_to_instance
class Gone(XiaopuError):
    """410: the resource exists but is withdrawn (e.g. a suspended shop's public pages)."""

    status = 410
    code = "gone"


@deserialize_to_instance
class ValidationFailed(XiaopuError):
    """422: a field is invalid or a platform rule is broken; ``details`` names them."""

    status = 422
    code = "validation_failed"


@deserialize_to_instance
class RuleViolation(ValidationFailed):
    """422 for a broken PRODUCT.md rule; ``details`` is a list of ``{"rule", "message"}``."""

    code = "rule_violation"


@deserialize_to_instance
class TooManyRequests(XiaopuError):
    """429: a rate limit was hit; ``details["retry_after"]`` is the seconds to wait (the gateway
    sends it as the ``Retry-After`` header)."""

    status = 429
    code = "too_many_requests"


@deserialize_to_instance
class ServiceUnavailable(XiaopuError):
    status = 503
    code = "service_unavailable"


def rule(rule_name: str, message: str, **extra: Any) -> dict:
    """One entry of a RuleViolation's details."""
    return {"rule": rule_name, "message": message, **extra}
