"""Entrypoints of the catalog service: each one validates, opens a unit of work, applies a rule."""
from __future__ import annotations

from shared.db import Database
from shared.platform import PlatformRpc

from catalog.models import Base


class CatalogService(PlatformRpc):
    name = "catalog"
    db = Database(Base.metadata)
