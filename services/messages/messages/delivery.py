"""Sending owed notifications: who the recipient is, where they are reached, once.

For each pending row: take it (``pending → sending``, committed: a crash from here on never
sends it twice), find the person and their contact (shop: the keeper of a shop; catalog: a
supplier's contact; shop: a member's phone; orders: the buyer of an order), apply their
preferences and the hourly limit, send through each chosen channel adapter, mark it ``sent``.
A recipient nobody can name (e.g. a shop that no longer answers) ends ``unreachable``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from messages.channels import Channel, Outgoing
from messages.domain import MessagesRules
from messages.handlers import notifications
from shared import clock
from shared.errors import NotFound

log = logging.getLogger(__name__)


class Directory:
    """Who a recipient key names and how to reach them (RPCs with deadlines)."""

    def __init__(self, shop: Any, catalog: Any, orders: Any):
        self.shop, self.catalog, self.orders = shop, catalog, orders

    def reach(self, recipient: str) -> tuple[str, dict] | None:
        """``(person, {"sms": phone, "wechat": ..., "email": ...})`` or None when unknown."""
        role, _, ident = recipient.partition(":")
        try:
            if role == "shop":
                keeper = self.shop.get_keeper_contact(int(ident))
                return f"member:{keeper['member_id']}", {"sms": keeper.get("phone")}
            if role == "member":
                member = self.shop.get_member(int(ident))
                return f"member:{member['id']}", {"sms": member.get("phone")}
            if role == "supplier":
                c = self.catalog.get_supplier_contact(int(ident))
                return f"supplier:{c['supplier_id']}", {
                    "sms": c.get("phone"),
                    "wechat": c.get("wechat"),
                    "email": c.get("email"),
                }
            if role == "order":
                order = self.orders.order_parties(int(ident))
                return self.reach(f"member:{order['buyer_id']}")
        except NotFound:
            return None
        return None


def dispatch(
    db: Any,
    rules: MessagesRules,
    directory: Callable[[], Directory],
    adapters: dict[str, Channel],
    ids: list[int],
) -> int:
    """Send the given pending notifications; the number sent."""
    sent = 0
    for nid in ids:
        try:
            sent += _one(db, rules, directory, adapters, nid)
        except Exception:  # one recipient's trouble must not stop the others
            log.exception("notification %s could not be sent", nid)
    return sent


def _one(
    db: Any,
    rules: MessagesRules,
    directory: Callable[[], Directory],
    adapters: dict[str, Channel],
    nid: int,
) -> int:
    with db.unit_of_work() as uow:
        taken = notifications.claim(uow, nid)
    if taken is None:
        return 0
    now = clock.now()
    try:
        reached = directory().reach(taken["recipient"])
    except Exception:
        # the directory could not answer now: give the row back for the timer to retry
        with db.unit_of_work() as uow:
            notifications.finish(uow, nid, "pending", [], now)
        raise
    if reached is None:
        with db.unit_of_work() as uow:
            notifications.finish(uow, nid, "unreachable", [], now)
        return 0
    person, contact = reached
    with db.unit_of_work() as uow:
        verdict, wanted = notifications.decide(uow, rules, nid, person, now)
        if verdict != "send":
            notifications.finish(uow, nid, verdict, [], now)
            return 0
    used = []
    for channel, preferred in wanted:
        to = preferred or contact.get(channel)
        adapter = adapters.get(channel)
        if not to or adapter is None:
            continue
        adapter.send(Outgoing(channel, str(to), taken["kind"], taken["text"], nid))
        used.append(channel)
    with db.unit_of_work() as uow:
        notifications.finish(uow, nid, "sent" if used else "unreachable", used, now)
    return 1 if used else 0
