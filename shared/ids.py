"""Identifiers: UUID4 strings for events and entities that must be unguessable, and random
integer ids for resources the API addresses by an integer (orders, refunds, shops, ...).

A sequential id tells a stranger how many orders there are and where the latest one is (the
issue-13 abuse list found the newest order in 31 requests). ``random_int_id()`` draws from the
whole positive int32 range (every id column is at least a 32-bit integer), so ids keep the
documented integer shape but cannot be counted or guessed; ``unused_int_id`` draws again when
the id is already taken.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from sqlalchemy import inspect, select

MAX_INT_ID = 2**31 - 1  # PostgreSQL ``integer``
ID_ATTEMPTS = 10


def new_id() -> str:
    return str(uuid.uuid4())


def random_int_id() -> int:
    """A uniformly random id in 1 .. 2**31 - 1."""
    return secrets.randbelow(MAX_INT_ID) + 1


def unused_int_id(session: Any, model: Any, attempts: int = ID_ATTEMPTS) -> int:
    """A random id no row of ``model`` has yet (its single-column primary key).

    A collision is rare (one in ~2,000 with a million rows) and is retried with a new draw; two
    transactions drawing the same free id at the same instant still meet the primary key, which
    refuses the second one like any other unique conflict."""
    key = inspect(model).primary_key[0]
    for _attempt in range(max(1, attempts)):
        candidate = random_int_id()
        if session.scalar(select(key).where(key == candidate)) is None:
            return candidate
    raise RuntimeError(f"no free {model.__name__} id after {attempts} draws")
