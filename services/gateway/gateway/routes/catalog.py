"""HTTP routes of the catalog service (API.md)."""
from __future__ import annotations


class CatalogRoutes:
    pass
