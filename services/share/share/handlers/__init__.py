"""The share service's command handlers, one module per seam: ``shares`` (may this keeper share
this product; a share for it), ``visits`` (buffer, admit and record visits), ``stats`` (the
stats read model of paid orders), ``facts`` (drop cached facts when catalog or shop says they
changed) and ``posters`` (remember a rendered poster). Each is a short function of the unit of
work (or the runtime state) and the command; none commits (the entrypoint's unit of work does).
Reads live in ``share.queries``."""

from share.handlers import facts, posters, shares, stats, visits

__all__ = ["facts", "posters", "shares", "stats", "visits"]
