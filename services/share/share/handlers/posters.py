"""Rendered posters are remembered in the ``poster_cache`` table by the hash of what they
draw, so every instance (and a restart) serves an unchanged poster without drawing it again."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table

from share.models import PosterCache
from share.posters import CONTENT_TYPE
from shared import clock
from shared.db import insert_or_ignore

POSTER_CACHE = cast(Table, PosterCache.__table__)


def remember(uow: Any, key: str, style: str, data: bytes) -> None:
    """Store a rendered poster once (another worker may have stored the same bytes)."""
    values = dict(
        key=key, style=style, content_type=CONTENT_TYPE, data=data, created_at=clock.now()
    )
    uow.session.execute(insert_or_ignore(POSTER_CACHE, uow.session.get_bind().dialect.name), values)
