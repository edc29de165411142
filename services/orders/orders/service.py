"""Entrypoints of the orders service: each one validates, opens a unit of work, applies a rule."""
from __future__ import annotations

from shared.db import Database
from shared.platform import PlatformRpc

from orders.models import Base


class OrdersService(PlatformRpc):
    name = "orders"
    db = Database(Base.metadata)
