"""Entrypoints of the orders service: validate with the contract model, open the unit of work,
call one handler (``orders.handlers.<seam>``) or query (``orders.queries``).

The rules live in ``orders.domain``; the payment provider behind ``orders.payments``. Calls to
other services go through ``self.deadline`` (shared/rpc.py). A state change that owes a call to
the catalog (commit or release stock) records it in its transaction; the call is made right
after the commit (``_settle_stock``) and retried by the timer when it fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import eventlet
from nameko.rpc import RpcProxy
from sqlalchemy.exc import IntegrityError

from orders import domain, queries, refund_queue
from orders.domain import OrderRules
from orders.handlers import checkout, lifecycle, payment, refund_deadlines, refunds, stock
from orders.handlers import products as products_view
from orders.handlers.checkout import Placed, Quote
from orders.handlers.common import Done, Owed
from orders.models import Base
from orders.payments import Payments
from shared import clock
from shared.config import sandbox_pay_enabled
from shared.contracts.events import ProductSnapshot, StockCommitRefused
from shared.contracts.orders import (
    CartIn,
    CheckoutIn,
    ListQuery,
    PaymentCallback,
    ReclaimIn,
    RefundIn,
    RefundQuery,
    ShipIn,
    Viewer,
)
from shared.db import Database
from shared.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
    XiaopuError,
)
from shared.events import event_handler
from shared.fingerprints import Fingerprinter
from shared.httprpc import http_rpc
from shared.ids import new_id
from shared.platform import PlatformRpc
from shared.rpc import rpc
from shared.timers import configured_timer
from shared.validation import an_id, validated

log = logging.getLogger(__name__)


def viewer_of(viewer: Any) -> Viewer:
    """Who asks (the gateway passes the token's role and subject); None: another service."""
    if viewer is None:
        return Viewer(role="admin", id="system")
    return validated(Viewer, viewer)


def page_of(query: Any) -> tuple[ListQuery, queries.Cursor | None]:
    q = validated(ListQuery, query or {})
    if not q.cursor:
        return q, None
    try:
        return q, queries.decode_cursor(q.cursor)
    except ValueError as exc:
        raise ValidationFailed(
            "the cursor is invalid", details=[{"field": "cursor", "message": "bad cursor"}]
        ) from exc


class OrdersService(PlatformRpc):
    name = "orders"
    db = Database(Base.metadata)
    catalog_rpc = RpcProxy("catalog")
    shop_rpc = RpcProxy("shop")
    share_rpc = RpcProxy("share")

    @property
    def rules(self) -> OrderRules:
        return OrderRules.from_config(self.config)

    provider = Payments()

    @rpc
    @http_rpc
    def echo(self, payload=None):
        """The bare call, also over HTTP (benchmark: the gateway's two ways to orders)."""
        return payload

    def _catalog(self) -> Any:
        return self.deadline.call(self.catalog_rpc, "catalog")

    def _shop(self) -> Any:
        return self.deadline.call(self.shop_rpc, "shop")

    def _share(self) -> Any:
        return self.deadline.call(self.share_rpc, "share")

    # --- carts and checkout -------------------------------------------------------------------
    @rpc
    def get_cart(self, buyer_id):
        with self.db.read() as session:
            return queries.get_cart(session, int(buyer_id))

    @rpc
    def put_cart(self, buyer_id, data):
        cart = validated(CartIn, data)
        with self.db.unit_of_work() as uow:
            checkout.put_cart(uow, int(buyer_id), cart, clock.now())
        return self.get_cart(buyer_id)

    @rpc
    @http_rpc
    def checkout(self, buyer_id, data, checkout_key=None):
        """Price from orders' read model of the catalog; read the products, take their stock
        from orders' pool and write the orders in ONE transaction of two statements (no
        catalog call while the pool covers them: a short pool asks the catalog for a grant and
        tries again). A replayed checkout of orders placed before the pool existed reserves
        their stock at the catalog (one RPC per order); a failed reservation cancels them all
        and releases stock."""
        buyer, body = int(buyer_id), validated(CheckoutIn, data)
        # the client's checkout key, else the request's idempotency key (shared.idempotency):
        # a retry or a redelivery of this request finds the orders it placed
        key = body.checkout_key or checkout_key or self.db.idempotency_key
        rules, now = self.rules, clock.now()
        try:
            quoted = checkout.quote(self._shop(), self._share(), rules, buyer, body, now)
            placed = self._place(rules, buyer, body, key, quoted, now)
        except XiaopuError:  # sold out or changed since: a retry of a placed checkout replays
            placed = self._checkout_replay(buyer, key)
            if placed is None:
                raise
        # replayed too: the first attempt may have died before it reserved (the reservation
        # id is the order's, so a reservation already made is answered, not made twice)
        try:
            for r in placed.reservations:
                stock.reserve(self._catalog(), rules, r.reservation_id, r.items)
        except Exception as exc:
            self._settle_stock(self._undo_checkout(placed, now))
            if isinstance(exc, Conflict) and stock.price_moved(exc):
                self._refresh_products(
                    [i["product_id"] for r in placed.reservations for i in r.items]
                )
            if isinstance(exc, XiaopuError):
                raise
            raise checkout.nothing_ordered(exc) from exc
        return placed.answer

    def _place(
        self,
        rules: OrderRules,
        buyer: int,
        body: CheckoutIn,
        key: str | None,
        quoted: Quote,
        now: Any,
    ) -> Placed:
        """The orders in one transaction, their stock taken from the pool; the same key raced
        in: its orders (a random order id that collided is drawn again). Products orders'
        view has never seen are asked of the catalog once (``checkout.Unknown``; those the
        catalog does not know either are then a 422). A pool that cannot
        cover a line asks the catalog for a grant (``_grant``) and tries again; 409
        ``insufficient_stock`` when even the grant cannot cover it (nothing was ordered)."""
        collisions = grants = 0
        asked = False
        while collisions < 3:
            try:
                with self.db.unit_of_work() as uow:
                    return checkout.place(
                        uow,
                        rules,
                        buyer,
                        body,
                        key,
                        quoted,
                        now,
                        Fingerprinter.from_config(self.config),
                        asked,
                    )
            except checkout.Unknown as unknown:  # never seen by an event: ask the catalog once
                answered = self._catalog().get_products(unknown.product_ids)
                with self.db.unit_of_work() as uow:
                    products_view.refresh(uow, answered)
                asked = True
            except IntegrityError:
                placed = self._checkout_replay(buyer, key)
                if placed is not None:
                    return placed
                collisions += 1
            except stock.Short as short:
                grants += 1
                have, priced = self._grant(rules, short.lines, now)
                moved = {p: v for p, v in priced.items() if v != short.prices.get(p, v)}
                if moved:  # priced from a read model that lags the catalog: refresh it
                    self._refresh_products(sorted(moved))
                    raise stock.price_changed(short.lines, have, moved) from None
                lacking = {p: q for p, q in short.lines.items() if have.get(p, 0) < q}
                if lacking:  # grants of these products left unanswered (a dead instance's)?
                    have = self._settle_grants(set(lacking))
                    lacking = {p: q for p, q in lacking.items() if have.get(p, 0) < q}
                if lacking or grants == 3:  # racing checkouts took the grants: tried enough
                    raise stock.insufficient(lacking or short.lines, have) from None
        raise ServiceUnavailable("the checkout could not be written; nothing was ordered")

    def _grant(
        self, rules: OrderRules, lines: dict[int, int], now: Any
    ) -> tuple[dict[int, int], dict[int, int]]:
        """Ask the catalog for units of the short products (at least ``stock_grant_units``
        each), recorded as asked first so a lost answer is asked again by the timer: the pool
        of those products after the answer was added, and the catalog's price of each now."""
        grant_id = new_id()
        wanted = {p: domain.grant_wanted(q, rules) for p, q in lines.items()}
        with self.db.unit_of_work() as uow:
            stock.ask(uow.session, grant_id, wanted, now)
        try:
            answer = self._ask_catalog(grant_id, wanted)
        except Exception as exc:  # unknown outcome: the timer asks again with the same id
            raise checkout.nothing_ordered(exc) from exc
        with self.db.unit_of_work() as uow:
            stock.apply(uow.session, grant_id, answer, clock.now())
            return stock.pool_units(uow.session, lines), stock.answered_prices(answer)

    def _retry_grants(self, rules: OrderRules, now: Any) -> int:
        """The timer: grants asked more than ``stock_grant_retry_seconds`` ago and never
        answered (a lost reply, a crash between the call and its answer) are asked again with
        the same id (the catalog answers a repeat with what it granted the first time) and
        applied once. How many were asked again."""
        before = now - timedelta(seconds=rules.stock_grant_retry_seconds)
        with self.db.read() as session:
            due = stock.unanswered(session, before)
        self._ask_again(due)
        return len(due)

    def _settle_grants(self, products: set[int]) -> dict[int, int]:
        """A checkout the pool cannot cover even after its own grant: every unanswered grant
        of its short products is asked again at once (units a dead instance's grant took at
        the catalog are then not missing until the timer's next tick). Their pool after."""
        with self.db.read() as session:
            due = stock.unanswered(session, clock.now(), products)
        self._ask_again(due)
        with self.db.read() as session:
            return stock.pool_units(session, products)

    def _ask_catalog(self, grant_id: str, wanted: dict[int, int]) -> dict:
        """The catalog's answer to the grant; a refusal made on purpose (nothing granted)
        answers an empty grant. Any other failure raises: the outcome is unknown and the
        grant stays asked."""
        try:
            return dict(self._catalog().grant_stock(grant_id, stock.grant_items(wanted)))
        except stock.REFUSED:
            return {"grant_id": grant_id, "items": []}

    def _ask_again(self, due: dict[str, dict[int, int]]) -> None:
        for grant_id, wanted in due.items():
            try:
                answer = self._ask_catalog(grant_id, wanted)
            except Exception as exc:  # the catalog is away: the next tick asks again
                log.warning("asking grant %s again failed: %s", grant_id, exc)
                continue
            with self.db.unit_of_work() as uow:
                stock.apply(uow.session, grant_id, answer, clock.now())

    @rpc
    def reclaim_stock(self, reclaim_id, product_ids, grant_ids=None):
        """The catalog takes back the free pool units of ``product_ids`` (before the supplier
        sets their stock, delists them or is suspended) and revokes the ``grant_ids`` whose
        answers were not applied yet: ``{reclaim_id, items: [{product_id, units}], revoked}``.
        Once per ``reclaim_id``."""
        body = validated(
            ReclaimIn,
            {"reclaim_id": reclaim_id, "product_ids": product_ids, "grant_ids": grant_ids or []},
        )
        for _attempt in range(2):
            try:
                with self.db.unit_of_work() as uow:
                    return stock.reclaim(
                        uow.session, body.reclaim_id, body.product_ids, body.grant_ids, clock.now()
                    )
            except IntegrityError:  # the same reclaim raced in: the next attempt answers it
                continue
        raise ServiceUnavailable("the reclaim could not be recorded")

    def _refresh_products(self, product_ids: list[int]) -> None:
        """The catalog refused a stale price: bring the read model up to date for a retry."""
        try:
            answered = self._catalog().get_products(product_ids)
            with self.db.unit_of_work() as uow:
                products_view.refresh(uow, answered)
        except Exception as exc:  # the next event or checkout refreshes it
            log.warning("refreshing products %s failed: %s", product_ids, exc)

    def _undo_checkout(self, placed: Placed, now: Any) -> list[Owed]:
        """Cancel the checkout's orders (their stock could not be reserved). The orders are
        already written as holding stock the catalog does not hold, so this transaction must
        not be lost to a blip: a connection that died under it (the reservation failed because
        the databases are being cut) is retried on a fresh one, a few times, even past the
        caller's deadline. If the database stays away, the orders expire unpaid at their
        deadline like any unpaid order, and a retry of the checkout with the same key finds
        and reserves them."""
        attempts = max(1, int(self.config.get("ORDERS_UNDO_ATTEMPTS", 4)))
        for attempt in range(1, attempts + 1):
            try:
                with self.db.unit_of_work(compensating=True) as uow:
                    return checkout.undo(uow, placed, now)
            except ServiceUnavailable:
                if attempt == attempts:
                    raise
                log.warning("undoing checkout %s failed; retrying", placed.checkout_id)
                eventlet.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")

    def _checkout_replay(self, buyer_id: int, key: str | None) -> Placed | None:
        if not key:
            return None
        with self.db.read() as session:
            return checkout.replayed(session, buyer_id, key)

    # --- the read model of catalog products (checkout prices from it) --------------------------
    def _product_event(self, event: dict) -> None:
        snapshot = validated(ProductSnapshot, event.get("data"))
        with self.db.unit_of_work() as uow:
            products_view.on_product_event(uow, event, snapshot)

    @event_handler("catalog", "product_listed")
    def on_product_listed(self, event):
        self._product_event(event)

    @event_handler("catalog", "product_changed")
    def on_product_changed(self, event):
        self._product_event(event)

    @event_handler("catalog", "product_delisted")
    def on_product_delisted(self, event):
        self._product_event(event)

    @event_handler("catalog", "stock_commit_refused")
    def on_stock_commit_refused(self, event):
        """The catalog could not commit a paid order's stock from ``order_paid``: the order is
        flagged ``commit_refused``, as when its own ``commit_stock`` call is refused."""
        refused = validated(StockCommitRefused, event.get("data"))
        with self.db.unit_of_work() as uow:
            if uow.claim(event, "on_stock_commit_refused"):
                stock.refused(uow, refused)

    # --- payment ------------------------------------------------------------------------------
    @rpc
    @http_rpc
    def payment_callback(self, raw_body, signature=None):
        """The provider's signed callback (raw body as sent, hex HMAC-SHA256 signature)."""
        data = self.provider.verify(raw_body, signature)  # Unauthorized: nothing changes
        callback = validated(PaymentCallback, data)
        raw = raw_body.decode("utf-8", "replace") if isinstance(raw_body, bytes) else raw_body
        args = (callback, data, clock.now(), self.provider.name, str(raw))
        return self._pay_once(lambda uow, fast: payment.apply_callback(uow, *args, fast=fast))

    @rpc
    @http_rpc
    def pay(self, order_id, viewer):
        """Sandbox shortcut: pays the order's total as the provider's signed callback would,
        in one transaction. It does not exist unless test mode is on or the sandbox provider
        is explicitly configured, and never in production (``config.sandbox_pay_enabled``)."""
        if not sandbox_pay_enabled(self.config):
            raise NotFound("no such endpoint", code="route_not_found")
        oid, who, now = an_id(order_id, "order"), viewer_of(viewer), clock.now()
        return self._pay_once(
            lambda uow, fast: (
                payment.pay_sandbox(uow, self.provider, oid, who, now)
                if fast
                else self._sandbox_callback(uow, oid, who, now)
            )
        )

    def _sandbox_callback(self, uow: Any, oid: int, who: Viewer, now: Any) -> payment.Applied:
        """The full path of ``pay``: the callback the provider would send, applied."""
        total = payment.amount_to_pay(uow.session, oid, who)
        raw, signature = self.provider.build_callback(oid, total, f"sbx-pay-{oid}")
        data = self.provider.verify(raw, signature)
        cb = validated(PaymentCallback, data)
        return payment.apply_callback(uow, cb, data, now, self.provider.name, fast=False)

    def _pay_once(self, apply: Callable[[Any, bool], payment.Applied]) -> dict:
        """A payment in ONE transaction, once per idempotency key of the request: no pre-read,
        no RPC (the catalog commits the stock from ``order_paid``). The common case first, in
        two statements, writing the request's key with its answer (``payment._paid``); a key
        recorded already, a payment id already recorded or racing in for another order, or
        anything but the common case rolls that back and takes the full path, its key claimed
        first (``uow.once``: a repeat answers the recorded outcome)."""
        owed: list[Owed] = []

        def fast() -> dict:
            with self.db.unit_of_work() as uow:
                return payment.outcome_of(apply(uow, True).answer)

        def full() -> dict:
            with self.db.unit_of_work() as uow:

                def run() -> dict:
                    applied = apply(uow, False)
                    owed.extend(applied.owed)
                    return payment.outcome_of(applied.answer, applied.refused)

                return uow.once(run)  # a repeat of this request answers the same

        try:
            outcome = fast()
        except (payment.NotFast, IntegrityError):  # a payment id or key already recorded
            outcome = full()
        self._settle_stock(owed)
        if outcome["refused"] is not None:
            self._refund_late_payments()
            raise Conflict(*outcome["refused"])
        return outcome["answer"]

    @rpc
    def list_payment_conflicts(self, query=None):
        """Payment ids refused because they belong to another order (operators)."""
        q, cursor = page_of(query)
        with self.db.read() as session:
            return queries.list_payment_conflicts(session, q, cursor)

    # --- the order's life ---------------------------------------------------------------------
    @rpc
    def cancel_order(self, order_id, viewer):
        oid, who = an_id(order_id, "order"), viewer_of(viewer)
        return self._command(lifecycle.cancel, oid, who, clock.now())

    @rpc
    def ship_order(self, order_id, viewer, data):
        body = validated(ShipIn, data)
        oid, who = an_id(order_id, "order"), viewer_of(viewer)
        return self._command(lifecycle.ship, oid, who, body, clock.now())

    @rpc
    def confirm_order(self, order_id, viewer):
        oid, who = an_id(order_id, "order"), viewer_of(viewer)
        return self._command(lifecycle.confirm, self.rules, oid, who, clock.now())

    @rpc
    def request_refund(self, order_id, viewer, data):
        body = validated(RefundIn, data)
        oid, who = an_id(order_id, "order"), viewer_of(viewer)
        with self.db.unit_of_work() as uow:
            return uow.once(
                lambda: refunds.request_refund(uow, oid, who, body, clock.now(), self.rules)
            )

    @rpc
    def approve_refund(self, refund_id, viewer):
        return self._decide_refund(refund_id, viewer, approve=True)

    @rpc
    def reject_refund(self, refund_id, viewer):
        return self._decide_refund(refund_id, viewer, approve=False)

    def _decide_refund(self, refund_id: Any, viewer: Any, approve: bool) -> dict:
        rid, who = an_id(refund_id, "refund"), viewer_of(viewer)
        return self._command(refunds.decide_refund, self.provider, rid, who, approve, clock.now())

    @rpc
    def list_refunds(self, viewer, query=None):
        """The refund queue (``GET /refunds``): a supplier's own, the platform's all."""
        who, q = viewer_of(viewer), validated(RefundQuery, query or {})
        if who.role == "member":
            raise Forbidden("the refund queue is the supplier's", code="not_a_supplier")
        with self.db.read() as session:
            return refund_queue.list_refunds(session, who, q)

    @rpc
    def get_refund(self, refund_id, viewer=None):
        rid, who = an_id(refund_id, "refund"), viewer_of(viewer)
        with self.db.read() as session:
            return queries.get_refund(session, rid, who)

    # --- reading ------------------------------------------------------------------------------
    @rpc
    def get_order(self, order_id, viewer=None):
        """The order with items, status and history; masked for the keeper. Without a viewer
        (service-to-service) the full order."""
        oid, who = an_id(order_id, "order"), viewer_of(viewer)
        with self.db.read() as session:
            return queries.get_order(session, oid, who)

    @rpc
    def list_orders(self, viewer, query=None):
        who, (q, cursor) = viewer_of(viewer), page_of(query)
        with self.db.read() as session:
            return queries.list_orders(session, who, q, cursor)

    @rpc
    def order_parties(self, order_id):
        """Service-to-service (messages): who the order's parties are, its state and its
        items as snapshotted at checkout. Never exposed by the gateway as it is."""
        oid = an_id(order_id, "order")
        with self.db.read() as session:
            return queries.order_parties(session, oid)

    # --- time ---------------------------------------------------------------------------------
    @rpc
    def run_timers(self):
        """Expire unpaid orders, auto-confirm, complete, and retry owed stock calls — now."""
        return self._run_timers()

    @configured_timer("ORDERS_TIMER_SECONDS", 3.0)
    def tick(self):
        try:
            self._run_timers()
        except Exception:  # the next tick retries; never kill the timer
            log.exception("orders timers failed")

    def _run_timers(self) -> dict:
        """Every time rule as of ``clock.now()``, one transaction per order (each re-checks the
        order under its lock): safe to run concurrently and repeatedly."""
        rules, now = self.rules, clock.now()
        with self.db.read() as session:
            due = lifecycle.due(session, rules, now)
        expired = [self._alone(lifecycle.expire_unpaid, oid, now) for oid in due.expire]
        for done in expired:
            if done is not None:
                self._settle_stock(done.owed)
        received = [
            self._alone(lifecycle.receive_automatically, rules, oid, now) for oid in due.receive
        ]
        completed = [self._alone(lifecycle.complete, oid, now) for oid in due.complete]
        timed_out = self._refund_deadlines(rules, now)
        grants_retried = self._retry_grants(rules, now)
        with self.db.read() as session:
            owed = stock.owed(session)
        self._settle_stock(owed)
        self._refund_late_payments()
        return {
            "expired": sum(d is not None for d in expired),
            "received": sum(received),
            "completed": sum(completed),
            "stock_retried": len(owed),
            "grants_retried": grants_retried,
            "refunds_timed_out": timed_out,
            "now": clock.iso(now),
        }

    def _refund_deadlines(self, rules: OrderRules, now: Any) -> int:
        """Refunds undecided at their deadline: approved or escalated, one transaction each."""
        with self.db.read() as session:
            late = refund_deadlines.overdue(session, now)
        acted = 0
        for refund_id in late:
            done = self._alone(refund_deadlines.on_deadline, self.provider, rules, refund_id, now)
            if done is not None:
                acted += 1
                self._settle_stock(done.owed)
        return acted

    # --- after the commit ---------------------------------------------------------------------
    def _alone(self, handler: Callable[..., Any], *args: Any) -> Any:
        """``handler(uow, *args)`` in a unit of work of its own."""
        with self.db.unit_of_work() as uow:
            return handler(uow, *args)

    def _command(self, handler: Callable[..., Done], *args: Any) -> dict:
        """``handler(uow, *args)`` once per idempotency key of the request (a repeat answers
        the recorded outcome); the stock calls its transaction owes are made after the commit
        (a repeat owes none: the timer retries whatever the first one could not make)."""
        owed: list[Owed] = []
        with self.db.unit_of_work() as uow:

            def run() -> dict:
                done = handler(uow, *args)
                owed.extend(done.owed)
                return done.answer

            answer = uow.once(run)
        self._settle_stock(owed)
        return answer

    def _settle_stock(self, owed: list[Owed]) -> None:
        """Make the stock calls a committed transaction left owed; record each answer."""
        for row in owed:
            done = stock.call_catalog(self._catalog(), row)
            if done is not None:
                self._alone(stock.record, row, done)

    def _refund_late_payments(self) -> None:
        with self.db.read() as session:
            due = payment.late_payments(session)
        for payment_id, amount_fen in due:
            if payment.refund_late(self.provider, payment_id, amount_fen):
                self._alone(payment.mark_refunded, payment_id)
