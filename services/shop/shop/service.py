"""Entrypoints of the shop service: each one validates, opens a unit of work, applies a rule."""
from __future__ import annotations

from shared.db import Database
from shared.platform import PlatformRpc

from shop.models import Base


class ShopService(PlatformRpc):
    name = "shop"
    db = Database(Base.metadata)
