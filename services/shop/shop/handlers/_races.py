"""A handler that lost a race to a concurrent writer (a unique key taken between its check and
its insert) raises ``LostRace``: its transaction is spoiled, so the entrypoint runs the unit of
work again; if it loses every time, the caller gets ``public``."""

from __future__ import annotations

from shared.errors import XiaopuError


class LostRace(Exception):
    def __init__(self, public: XiaopuError):
        super().__init__(str(public))
        self.public = public
