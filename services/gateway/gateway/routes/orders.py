"""HTTP routes of the orders service (API.md)."""
from __future__ import annotations


class OrdersRoutes:
    pass
