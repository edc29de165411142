"""Command handlers of the shop service, one module per seam.

Each is a short function ``fn(uow, rules?, command...) -> result`` called by one entrypoint of
``shop.service`` inside the unit of work it opened; handlers never commit (the unit of work does,
with the outbox rows they emitted) and never call another service (the entrypoint does that
first, outside any transaction, and passes the answer in).

* ``members``    register a member, grant a shop quota
* ``shops``      open, edit and verify a shop
* ``selections`` pick and unpick catalog products (the 1,000-pick rule)
* ``levels``     a month's keeper levels (``level_changed`` with ``bonus_bps``)
* ``read_model`` the local copy of catalog products (``product_listed/changed/delisted``)
* ``suspensions`` an admin suspends / reinstates a shop or a keeper (``shop_suspended`` /
                  ``shop_reinstated``)
"""

from shop.handlers import levels, members, read_model, selections, shops, suspensions
from shop.handlers._races import LostRace

__all__ = ["LostRace", "levels", "members", "read_model", "selections", "shops", "suspensions"]
