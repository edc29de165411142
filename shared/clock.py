"""The platform clock: every time-based rule reads ``clock.now()``.

In test mode an operator (``POST /api/v1/admin/clock``) or a test moves it for every service:
the gateway calls each service's ``set_clock`` RPC. Moving the clock sets an offset, so time
keeps flowing from the new instant.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

UTC = UTC
_offset = timedelta(0)


def real_now() -> datetime:
    return datetime.now(UTC)


def now() -> datetime:
    return real_now() + _offset


def set_now(instant: datetime) -> datetime:
    global _offset
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    _offset = instant - real_now()
    return now()


def reset() -> None:
    global _offset
    _offset = timedelta(0)


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
