"""Entrypoints of the share service: each one validates, opens a unit of work, applies a rule."""
from __future__ import annotations

from shared.db import Database
from shared.platform import PlatformRpc

from share.models import Base


class ShareService(PlatformRpc):
    name = "share"
    db = Database(Base.metadata)
