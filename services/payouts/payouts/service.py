"""Entrypoints of the payouts service: each one validates, opens a unit of work, applies a rule."""
from __future__ import annotations

from shared.db import Database
from shared.platform import PlatformRpc

from payouts.models import Base


class PayoutsService(PlatformRpc):
    name = "payouts"
    db = Database(Base.metadata)
