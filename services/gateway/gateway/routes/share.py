"""HTTP routes of the share service (API.md)."""
from __future__ import annotations


class ShareRoutes:
    pass
