"""HTTP routes of the payouts service (API.md)."""
from __future__ import annotations


class PayoutsRoutes:
    pass
