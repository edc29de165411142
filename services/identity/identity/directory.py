"""Who owns a phone: identity asks the services that own the accounts.

* members: the shop service, RPC ``member_by_phone(phone) -> {"id": int} | None``;
* suppliers: the catalog service, RPC ``supplier_by_phone(phone) -> {"id": int, "status": str}
  | None`` (the supplier whose contact phone it is);
* a new member registers through the shop's existing ``register_member``.

Answers are remembered in identity's ``accounts`` table (``sessions.remember_account``), so a
phone is looked up once. Until shop and catalog ship the two lookups (README "Needs from other
services") a ``MethodNotFound`` answer counts as "no account": members who registered through
identity still sign in (identity remembers them), and nobody is told anything about a phone.
"""

from __future__ import annotations

import logging
from typing import Any

from nameko.exceptions import MethodNotFound

from shared.errors import Conflict

log = logging.getLogger(__name__)

# A buyer registering by phone code declares nothing: credit score and real-name status come
# from the identity provider when the member wants to open a shop (PRODUCT.md v1.1).
UNDECLARED = {"credit_score": 0, "real_name_verified": False}


class Directory:
    def __init__(self, shop: Any, catalog: Any):
        self.shop = shop
        self.catalog = catalog

    def owner(self, role: str, phone: str) -> int | None:
        try:
            if role == "member":
                found = self.shop.member_by_phone(phone)
            else:
                found = self.catalog.supplier_by_phone(phone)
        except MethodNotFound:
            owner = "shop.member_by_phone" if role == "member" else "catalog.supplier_by_phone"
            log.warning("%s does not exist yet: only accounts identity knows can sign in", owner)
            return None
        return int(found["id"]) if found else None

    def register_member(self, phone: str, nickname: str) -> int | None:
        """The new member's id; None when the phone turns out to be registered already."""
        try:
            member = self.shop.register_member({"nickname": nickname, "phone": phone, **UNDECLARED})
        except Conflict:
            return None
        return int(member["id"])
