"""Sending owed notifications: who the recipient is, where they are reached, once.

A batch at a time (the timer's, or ``run_timers``): take the pending rows in one statement
(``pending → sending``, committed: a crash from here on never sends them twice), find each
recipient's person and contact (shop: the keeper of a shop; catalog: a supplier's contact;
shop: a member's phone; orders: the buyer of an order — answers kept for
``contact_cache_seconds``, so a busy keeper costs one lookup, not one per order), apply their
preferences and the hourly limit for the whole batch in one transaction, send through each
chosen channel adapter, and record how every row ended in one statement. A recipient nobody can
name (e.g. a shop that no longer answers) ends ``unreachable``; a recipient the directory cannot
answer for now goes back to ``pending`` for the next batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from nameko.extensions import DependencyProvider

from messages.channels import Channel, Outgoing, send_all
from messages.domain import MessagesRules
from messages.handlers import notifications
from shared import clock
from shared.errors import NotFound
from shared.lru import LRU

log = logging.getLogger(__name__)

Reached = tuple[str, dict]  # (person, {"sms": phone, "wechat": ..., "email": ...})


class Directory:
    """Who a recipient key names and how to reach them (RPCs with deadlines), remembered in
    ``contacts`` when given (a recipient nobody can name is not remembered)."""

    def __init__(self, shop: Any, catalog: Any, orders: Any, contacts: LRU | None = None):
        self.shop, self.catalog, self.orders = shop, catalog, orders
        self.contacts = contacts

    def reach(self, recipient: str) -> Reached | None:
        """``(person, contact)`` or None when unknown."""
        if self.contacts is not None:
            known = self.contacts.get(recipient)
            if known is not None:
                return known
        found = self._ask(recipient)
        if found is not None and self.contacts is not None:
            self.contacts.put(recipient, found)
        return found

    def _ask(self, recipient: str) -> Reached | None:
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


class Contacts(DependencyProvider):
    """The directory's answers, one cache per service container, for the rules'
    ``contact_cache_seconds`` (a changed phone reaches notifications within that time)."""

    def setup(self) -> None:
        rules = MessagesRules.from_config(self.container.config)
        self.cache: LRU[str, Reached] = LRU(maxsize=20_000, ttl=rules.contact_cache_seconds)

    def get_dependency(self, worker_ctx: Any) -> LRU:
        return self.cache


def dispatch(
    db: Any,
    rules: MessagesRules,
    directory: Callable[[], Directory],
    adapters: dict[str, Channel],
    ids: list[int] | None = None,
    limit: int = 100,
) -> int:
    """Send pending notifications — ``ids``, else the oldest ``limit`` — in one batch; the
    number sent."""
    now = clock.now()
    with db.unit_of_work() as uow:
        taken = notifications.claim(uow, ids, limit)
    if not taken:
        return 0
    ask = directory()
    reached: list[tuple[dict, str, dict]] = []
    ended: list[dict] = []
    for row in taken:
        try:
            found = ask.reach(row["recipient"])
        except Exception:  # the directory cannot answer now: the next batch retries the row
            log.exception(
                "recipient %s of notification %s not found now", row["recipient"], row["id"]
            )
            ended.append({"id": row["id"], "status": "pending"})
            continue
        if found is None:
            ended.append({"id": row["id"], "status": "unreachable"})
        else:
            reached.append((row, found[0], found[1]))
    contact_of = {row["id"]: contact for row, _, contact in reached}
    person_of = {row["id"]: person for row, person, _ in reached}
    outgoing: list[Outgoing] = []
    with db.unit_of_work() as uow:
        verdicts = notifications.decide(uow, rules, [(r, p) for r, p, _ in reached], now)
        for row, verdict, wanted in verdicts:
            if verdict != "send":
                ended.append({"id": row["id"], "status": verdict, "person": person_of[row["id"]]})
                continue
            used = []
            for channel, preferred in wanted:
                to = preferred or contact_of[row["id"]].get(channel)
                if not to or channel not in adapters:
                    continue
                outgoing.append(Outgoing(channel, str(to), row["kind"], row["text"], row["id"]))
                used.append(channel)
            ended.append(
                {
                    "id": row["id"],
                    "status": "sent" if used else "unreachable",
                    "person": person_of[row["id"]],
                    "channels": used,
                }
            )
        notifications.finish(uow, [e for e in ended if e["status"] != "sent"], now)
    failed = send_all(adapters, outgoing)
    for e in ended:
        if e["status"] == "sent" and failed:
            e["channels"] = [c for c in e["channels"] if (e["id"], c) not in failed]
            e["status"] = "sent" if e["channels"] else "failed"
    with db.unit_of_work() as uow:
        notifications.finish(uow, [e for e in ended if e["status"] in ("sent", "failed")], now)
    return sum(1 for e in ended if e["status"] == "sent")
