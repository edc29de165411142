"""Identifiers: UUID4 strings for events and entities that must be unguessable."""

from __future__ import annotations

import uuid


def new_id() -> str:
    return str(uuid.uuid4())
