"""The platform clock: every time-based rule reads ``clock.now()``.

In test mode an operator (``POST /api/v1/admin/clock``) or a test moves it for every instance of
every service (``shared.clocksync``: a broadcast event, and Redis so a restarted instance comes
up at the moved time). Moving the clock sets an offset, so time keeps flowing from the new
instant. Each move has a ``version`` (nanoseconds of the gateway's real time): an instance
ignores a move older than the one it has (a late broadcast after a newer RPC, say).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

UTC = UTC
_offset = timedelta(0)
_version = 0
# called after every change (shared.liveness: the heartbeat tells the gateways at once)
_listeners: list[Callable[[], None]] = []


def real_now() -> datetime:
    return datetime.now(UTC)


def now() -> datetime:
    return real_now() + _offset


def set_now(instant: datetime) -> datetime:
    global _offset
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    _offset = instant - real_now()
    _changed()
    return now()


def reset() -> None:
    global _offset
    _offset = timedelta(0)
    _changed()


def offset_seconds() -> float:
    return _offset.total_seconds()


def version() -> int:
    return _version


def apply(offset: float, move_version: int) -> bool:
    """Take the move ``move_version`` (offset in seconds from real time) unless a newer one is
    already in force; whether it was taken."""
    global _offset, _version
    if move_version < _version:
        return False
    _offset = timedelta(seconds=offset)
    _version = move_version
    _changed()
    return True


def on_change(listener: Callable[[], None]) -> None:
    _listeners.append(listener)


def remove_listener(listener: Callable[[], None]) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def _changed() -> None:
    for listener in list(_listeners):
        try:
            listener()
        except Exception:  # a report only: never let it undo the move
            pass


def parse(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def as_utc(dt: datetime | None) -> datetime | None:
    """Databases (SQLite) may hand back naive datetimes: they are UTC."""
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
