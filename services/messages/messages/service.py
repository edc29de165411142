"""Entrypoints of the messages service: each one validates with the contract model, opens a
unit of work (or a read session) and calls one handler (``messages.handlers``) or query
(``messages.queries``). Calls to other services go through ``self.deadline``.

RPC surface: open_order_thread, open_pre_sale_thread, get_thread, list_threads, post_message,
forward_thread, close_thread, order_contacts, get_preferences, set_preferences,
my_notifications, run_timers, sandbox_messages (test mode), plus health and set_clock.
Events consumed: orders (order_paid, order_shipped, refund_requested, refund_decided,
order_refunded), catalog (product_delisted), shop (selection_changed), payouts (payout_paid).
"""

from __future__ import annotations

import logging
from typing import Any

from nameko.rpc import RpcProxy

from messages import domain, queries
from messages.channels import channels
from messages.delivery import Contacts, Directory, dispatch
from messages.domain import MessagesRules
from messages.handlers import contacts, notifications, threads
from messages.models import Base
from shared import clock
from shared.config import test_mode
from shared.contracts.events import (
    OrderPaid,
    OrderRefunded,
    OrderStateChanged,
    PayoutPaid,
    ProductSnapshot,
    RefundDecided,
    RefundEscalated,
    RefundRequested,
    SelectionChanged,
)
from shared.contracts.messages import (
    ForwardIn,
    MessageIn,
    OrderThreadIn,
    PreferencesIn,
    PreSaleThreadIn,
    SandboxQuery,
    ThreadQuery,
    Viewer,
)
from shared.db import Database
from shared.errors import NotFound, ValidationFailed, XiaopuError
from shared.events import batch_event_handler, event_handler
from shared.platform import PlatformRpc
from shared.rpc import rpc
from shared.timers import configured_timer
from shared.validation import an_id, validated

log = logging.getLogger(__name__)

BATCH = 100  # notifications claimed and sent together
BATCHES_PER_TICK = 10


def viewer_of(viewer: Any) -> Viewer:
    """Who asks (the gateway passes the token's role and subject)."""
    return validated(Viewer, viewer)


def person_of(viewer: Viewer) -> str:
    if viewer.role not in ("member", "supplier"):
        raise ValidationFailed("only members and suppliers have preferences", code="bad_subject")
    return f"{viewer.role}:{int(viewer.id)}"


class MessagesService(PlatformRpc):
    name = "messages"
    db = Database(Base.metadata)
    orders_rpc = RpcProxy("orders")
    catalog_rpc = RpcProxy("catalog")
    shop_rpc = RpcProxy("shop")
    share_rpc = RpcProxy("share")
    contacts = Contacts()

    @property
    def rules(self) -> MessagesRules:
        return MessagesRules.from_config(self.config)

    def _call(self, service: str) -> Any:
        return self.deadline.call(getattr(self, f"{service}_rpc"), service)

    def _current_product(self, product_id: int) -> dict | None:
        """The catalog's current facts of a product; None when the catalog cannot answer (the
        thread is still shown, with the snapshot)."""
        try:
            found = self._call("catalog").get_products([product_id])
        except XiaopuError as exc:
            log.warning("product %s facts unavailable: %s", product_id, exc)
            return None
        return found[0] if found else None

    # --- threads --------------------------------------------------------------------------------
    @rpc
    def open_order_thread(self, order_id, viewer, data):
        """The buyer asks about an order; orders says who its parties are and its state."""
        body, who = validated(OrderThreadIn, data), viewer_of(viewer)
        order = self._call("orders").order_parties(an_id(order_id, "order"))
        with self.db.unit_of_work() as uow:
            return uow.once(
                lambda: threads.open_order_thread(uow, self.rules, who, order, body, clock.now())
            )

    @rpc
    def open_pre_sale_thread(self, viewer, data):
        """A question before buying, from a share code or a shop number: to that keeper."""
        body, who = validated(PreSaleThreadIn, data), viewer_of(viewer)
        if who.role != "member":
            raise ValidationFailed("members ask before buying", code="members_only")
        shop, share_id = contacts.shop_of(self._call("share"), self._call("shop"), body)
        product = self._call("catalog").get_product(body.product_id)
        with self.db.unit_of_work() as uow:
            return uow.once(
                lambda: threads.open_pre_sale_thread(
                    uow, self.rules, who, shop, product, body.text, share_id, clock.now()
                )
            )

    @rpc
    def get_thread(self, thread_id, viewer):
        tid, who = an_id(thread_id, "inquiry"), viewer_of(viewer)
        with self.db.read() as session:
            view, snapshot = queries.get_thread(session, tid, who)
        current = self._current_product(view["product_id"])
        return queries.with_facts(view, snapshot, current, self.rules)

    @rpc
    def list_threads(self, viewer, query=None):
        who, q = viewer_of(viewer), validated(ThreadQuery, query or {})
        with self.db.read() as session:
            return queries.list_threads(session, who, q)

    @rpc
    def post_message(self, thread_id, viewer, data):
        body, who = validated(MessageIn, data), viewer_of(viewer)
        tid = an_id(thread_id, "inquiry")
        with self.db.unit_of_work() as uow:
            return uow.once(
                lambda: threads.post_message(uow, self.rules, tid, who, body, clock.now())
            )

    @rpc
    def forward_thread(self, thread_id, viewer, data=None):
        body, who = validated(ForwardIn, data), viewer_of(viewer)
        tid = an_id(thread_id, "inquiry")
        with self.db.unit_of_work() as uow:
            return uow.once(lambda: threads.forward(uow, self.rules, tid, who, body, clock.now()))

    @rpc
    def close_thread(self, thread_id, viewer):
        tid, who = an_id(thread_id, "inquiry"), viewer_of(viewer)
        with self.db.unit_of_work() as uow:
            return uow.once(lambda: threads.close(uow, tid, who, clock.now()))

    # --- contacts -------------------------------------------------------------------------------
    @rpc
    def order_contacts(self, order_id, viewer):
        """Who handles what for an order, without anyone's personal phone: the keeper is
        reached through the thread; the supplier's published service contact."""
        oid, who = an_id(order_id, "order"), viewer_of(viewer)
        order = self._call("orders").order_parties(oid)
        party = contacts.order_party(order, who)
        supplier = self._call("catalog").get_supplier_contact(order["supplier_id"])
        shop = contacts.shop_card(self._call("shop"), order.get("shop_id"))
        with self.db.read() as session:
            asked = queries.order_threads(session, oid, who)
        return contacts.order_contacts(order, party, supplier, shop, asked)

    # --- notifications --------------------------------------------------------------------------
    @rpc
    def get_preferences(self, viewer):
        person = person_of(viewer_of(viewer))
        with self.db.read() as session:
            return queries.preferences(session, person)

    @rpc
    def set_preferences(self, viewer, data):
        body, person = validated(PreferencesIn, data), person_of(viewer_of(viewer))
        with self.db.unit_of_work() as uow:
            notifications.set_preferences(uow, person, body, clock.now())
        return self.get_preferences(viewer)

    @rpc
    def my_notifications(self, viewer, limit=50):
        person = person_of(viewer_of(viewer))
        with self.db.read() as session:
            return queries.my_notifications(session, person, max(1, min(int(limit or 50), 200)))

    @rpc
    def sandbox_messages(self, data=None):
        if not test_mode(self.config):
            raise NotFound("no such endpoint (test mode is off)", code="route_not_found")
        query = validated(SandboxQuery, data)
        with self.db.read() as session:
            return queries.sandbox_messages(session, query.to, query.limit)

    # --- events ---------------------------------------------------------------------------------
    def _on(self, event: dict, handler: str, apply) -> None:
        """Claim the event and record what it owes in one transaction; the timer sends what is
        owed in batches (``_send_pending``), within ``MESSAGES_TIMER_SECONDS``."""
        with self.db.unit_of_work() as uow:
            if uow.claim(event, handler):
                apply(uow, str(event["id"]), clock.now())

    @batch_event_handler("orders", "order_paid")
    def on_order_paid(self, events: list[dict]):
        """The money path's stream: a batch of ``order_paid`` per transaction (shared.events),
        each event still claimed once, the batch's notifications written in one statement."""
        paid = [(event, validated(OrderPaid, event["data"])) for event in events]
        data_of = {str(event["id"]): data for event, data in paid}
        with self.db.unit_of_work() as uow:
            now = clock.now()
            rows: list[dict] = []
            for event in uow.claim_all([event for event, _ in paid], "on_order_paid"):
                eid = str(event["id"])
                rows += notifications.order_paid_rows(eid, data_of[eid], now)
            notifications.owe_all(uow, rows, now)

    @event_handler("orders", "order_shipped")
    def on_order_shipped(self, event):
        data = validated(OrderStateChanged, event["data"])
        self._on(
            event, "on_order_shipped", lambda u, i, n: notifications.order_shipped(u, i, data, n)
        )

    @event_handler("orders", "refund_requested")
    def on_refund_requested(self, event):
        data, rules = validated(RefundRequested, event["data"]), self.rules
        self._on(
            event,
            "on_refund_requested",
            lambda u, i, n: notifications.refund_requested(u, rules, i, data, n),
        )

    @event_handler("orders", "refund_escalated")
    def on_refund_escalated(self, event):
        data = validated(RefundEscalated, event["data"])
        self._on(
            event,
            "on_refund_escalated",
            lambda u, i, n: notifications.refund_escalated(u, i, data, n),
        )

    @event_handler("orders", "refund_decided")
    def on_refund_decided(self, event):
        data = validated(RefundDecided, event["data"])
        self._on(
            event, "on_refund_decided", lambda u, i, n: notifications.refund_decided(u, i, data, n)
        )

    @event_handler("orders", "order_refunded")
    def on_order_refunded(self, event):
        data = validated(OrderRefunded, event["data"])
        self._on(
            event, "on_order_refunded", lambda u, i, n: notifications.order_refunded(u, i, data, n)
        )

    @event_handler("catalog", "product_delisted")
    def on_product_delisted(self, event):
        data = validated(ProductSnapshot, event["data"])
        self._on(
            event,
            "on_product_delisted",
            lambda u, i, n: notifications.product_delisted(u, i, data, n),
        )

    @event_handler("shop", "selection_changed")
    def on_selection_changed(self, event):
        data = validated(SelectionChanged, event["data"])
        with self.db.unit_of_work() as uow:
            if uow.claim(event, "on_selection_changed"):
                notifications.selection_changed(uow, data, clock.now())

    @event_handler("payouts", "payout_paid")
    def on_payout_paid(self, event):
        data = validated(PayoutPaid, event["data"])
        self._on(event, "on_payout_paid", lambda u, i, n: notifications.payout_paid(u, i, data, n))

    # --- time -----------------------------------------------------------------------------------
    @rpc
    def run_timers(self):
        """Escalate overdue threads and send what is owed — now."""
        return self._run_timers()

    @configured_timer("MESSAGES_TIMER_SECONDS", 1.0)
    def tick(self):
        try:
            self._run_timers()
        except Exception:  # the next tick retries; never kill the timer
            log.exception("messages timers failed")

    def _run_timers(self) -> dict:
        now = clock.now()
        with self.db.read() as session:
            due = threads.overdue(session, now)
        escalated = 0
        for tid in due:
            with self.db.unit_of_work() as uow:
                escalated += threads.escalate(uow, tid, now)
        return {"escalated": escalated, "sent": self._send_pending(), "now": clock.iso(now)}

    def _send_pending(self) -> int:
        """Everything owed, a batch at a time (each batch claimed in one statement)."""
        directory = lambda: Directory(  # noqa: E731 - built per batch, fresh deadlines
            self._call("shop"), self._call("catalog"), self._call("orders"), self.contacts
        )
        adapters = channels(self.config, self.db)
        sent = 0
        for _ in range(BATCHES_PER_TICK):  # the rest waits for the next tick
            sent_now = dispatch(self.db, self.rules, directory, adapters, limit=BATCH)
            sent += sent_now
            if not sent_now:
                break
        return sent


__all__ = ["MessagesService", "domain"]
