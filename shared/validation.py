"""Validation at the edge of every service: a contract model in, ``ValidationFailed`` (422,
naming each field) out. One function, so every service answers bad input the same way."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared.errors import NotFound, ValidationFailed

M = TypeVar("M", bound=BaseModel)


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic's errors as the envelope's ``details``: ``[{field, message}]``."""
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]


def validated(model: type[M], data: Any) -> M:
    """``data`` as ``model``; a missing body counts as ``{}``."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ValidationFailed("the request is invalid", details=field_errors(exc)) from exc


def an_id(value: Any, what: str) -> int:
    """A positive integer id, or 404 ``<what>_not_found`` (a malformed id names nothing)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        raise NotFound(f"{what} {value!r} not found", code=f"{what}_not_found")
    return int(value)


def not_found(what: str, ident: Any) -> NotFound:
    """THE 404 for a resource addressed by id, e.g. ``not_found("order", 7)`` → ``order 7 not
    found`` / ``order_not_found``. Raised both when the row is missing and when it belongs to
    someone else, so the two answers are the same bytes and an id cannot be probed."""
    return NotFound(f"{what} {ident} not found", code=f"{what}_not_found")
