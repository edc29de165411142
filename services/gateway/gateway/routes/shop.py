"""HTTP routes of the shop service (API.md)."""
from __future__ import annotations


class ShopRoutes:
    pass
