"""The share service's reads, apart from its commands (``share.handlers``): ``shares`` (share
lookups, the facts a share shows, resolve and landing), ``posters`` (poster and landing photo
bytes) and ``visits`` (last-click lookups and a shop's stats)."""

from share.queries import posters, shares, visits

__all__ = ["posters", "shares", "visits"]
