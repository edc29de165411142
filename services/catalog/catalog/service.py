"""Entrypoints of the catalog service: each one validates with the contract model, opens a unit of
work (or a read), and calls one handler (``catalog.handlers``) or query (``catalog.queries``).

RPC surface (README.md): register_supplier, pay_deposit, get_supplier, get_supplier_contact,
suspend_supplier, reinstate_supplier, create_product, update_product, delist_product,
relist_product, set_product_facts, set_product_images, browse, get_product, get_products,
get_image, grant_stock, reserve_stock, commit_stock, release_stock (and expire_reservations and
retry_owed_reclaims, which timers also run). It calls orders' ``reclaim_stock`` before a stock
change of products whose units are out in orders' pool (``_reclaiming``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from nameko.rpc import RpcProxy
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from catalog import queries
from catalog.domain import CatalogRules, merge_lines
from catalog.handlers import allotments, facts, gallery, products, stock, suppliers
from catalog.models import Base, Product
from shared import clock
from shared.contracts.catalog import (
    DepositIn,
    GrantIn,
    ProductFactsIn,
    ProductImagesIn,
    ProductIn,
    ProductPatch,
    ProductQuery,
    ReleaseIn,
    ReserveIn,
    SupplierIn,
)
from shared.contracts.events import OrderPaid, StockCommitRefused
from shared.db import Database
from shared.errors import NotFound, ServiceUnavailable, ValidationFailed
from shared.events import batch_event_handler
from shared.platform import PlatformRpc
from shared.rpc import rpc
from shared.timers import configured_timer
from shared.validation import an_id, validated

log = logging.getLogger(__name__)
REQUIRED_PRODUCT_FIELDS = (
    "title",
    "category",
    "price_fen",
    "stock",
    "commission_bps",
    "market_commission_bps",
    "reference_price_fen",
)
RECLAIM_ATTEMPTS = 3  # a reclaim re-recorded when grants keep reaching new products meanwhile


class CatalogService(PlatformRpc):
    name = "catalog"
    db = Database(Base.metadata)
    orders_rpc = RpcProxy("orders")

    @property
    def rules(self) -> CatalogRules:
        return CatalogRules.from_config(self.config)

    @contextmanager
    def fast_read(self) -> Iterator[Connection]:
        """A plain autocommit connection for the hot single-statement reads (browse, batch
        get_products): no BEGIN/ROLLBACK round trips around one SELECT."""
        with self.db.autocommit() as conn:  # a lost database is 503, never 500 (shared/db.py)
            yield conn

    # --- suppliers ----------------------------------------------------------------------------
    @rpc
    def register_supplier(self, data: dict) -> dict:
        body = validated(SupplierIn, data).model_dump()
        with self.db.unit_of_work() as uow:
            return uow.once(lambda: suppliers.register(uow, self.rules, body))

    @rpc
    def pay_deposit(self, supplier_id, amount_fen) -> dict:
        body = validated(DepositIn, {"amount_fen": amount_fen})
        with self.db.unit_of_work() as uow:
            return uow.once(
                lambda: suppliers.pay_deposit(uow, an_id(supplier_id, "supplier"), body.amount_fen)
            )

    @rpc
    def get_supplier(self, supplier_id) -> dict:
        with self.db.read() as session:
            return queries.get_supplier(session, an_id(supplier_id, "supplier"))

    @rpc
    def get_supplier_contact(self, supplier_id) -> dict:
        with self.db.read() as session:
            return queries.get_supplier_contact(session, an_id(supplier_id, "supplier"))

    @rpc
    def supplier_by_phone(self, phone) -> dict | None:
        """``{id, status}`` of the supplier whose contact phone is ``phone`` (identity's sign-in
        asks); the earliest registered one when several share it; None when nobody does."""
        with self.db.read() as session:
            return queries.supplier_by_phone(session, str(phone or ""))

    @rpc
    def suspend_supplier(self, supplier_id, reason: str | None = None) -> dict:
        """The supplier's units in orders' pool come back first (``_reclaiming``)."""
        sid = an_id(supplier_id, "supplier")
        return self._reclaiming(
            lambda session: list(
                session.scalars(select(Product.id).where(Product.supplier_id == sid))
            ),
            lambda uow: suppliers.suspend(uow, sid, reason),
        )

    @rpc
    def reinstate_supplier(self, supplier_id) -> dict:
        with self.db.unit_of_work() as uow:
            return uow.once(lambda: suppliers.reinstate(uow, an_id(supplier_id, "supplier")))

    # --- products -----------------------------------------------------------------------------
    @rpc
    def create_product(self, supplier_id, data: dict) -> dict:
        body = validated(ProductIn, data).model_dump()
        with self.db.unit_of_work() as uow:
            return uow.once(
                lambda: products.create(uow, self.rules, an_id(supplier_id, "supplier"), body)
            )

    @rpc
    def update_product(self, product_id, changes: dict, supplier_id=None) -> dict:
        """``supplier_id`` None = an admin edit; otherwise only that supplier's own product."""
        body = validated(ProductPatch, changes).model_dump(exclude_unset=True)
        nulls = [k for k in REQUIRED_PRODUCT_FIELDS if k in body and body[k] is None]
        if nulls:
            raise ValidationFailed(
                "these fields cannot be emptied",
                details=[{"field": k, "message": "may not be null"} for k in nulls],
            )
        owner = None if supplier_id is None else an_id(supplier_id, "supplier")
        pid = an_id(product_id, "product")
        # the supplier's new stock or price: orders' free pool units come back first (its pool
        # sells at the price of the grant that filled it: a new price is learnt from the next
        # grant, so a checkout priced from a lagging read model is refused, never sold)
        if "stock" in body or "price_fen" in body:
            return self._reclaiming(
                lambda session: _owned(session, pid, owner),
                lambda uow: products.update(uow, self.rules, pid, body, owner),
            )
        with self.db.unit_of_work() as uow:
            return uow.once(lambda: products.update(uow, self.rules, pid, body, owner))

    @rpc
    def delist_product(self, product_id, supplier_id=None) -> dict:
        """Orders' free pool units of the product come back first (``_reclaiming``)."""
        owner = None if supplier_id is None else an_id(supplier_id, "supplier")
        pid = an_id(product_id, "product")
        return self._reclaiming(
            lambda session: _owned(session, pid, owner),
            lambda uow: products.delist(uow, pid, owner),
        )

    @rpc
    def relist_product(self, product_id, supplier_id=None) -> dict:
        owner = None if supplier_id is None else an_id(supplier_id, "supplier")
        with self.db.unit_of_work() as uow:
            return uow.once(lambda: products.relist(uow, an_id(product_id, "product"), owner))

    @rpc
    def set_product_facts(self, product_id, data: dict, supplier_id=None) -> dict:
        """PUT /products/{id}/faq: specs, FAQ and after-sales policy (the owner, or an admin)."""
        body = validated(ProductFactsIn, data)
        owner = None if supplier_id is None else an_id(supplier_id, "supplier")
        with self.db.unit_of_work() as uow:
            return facts.set_facts(uow, an_id(product_id, "product"), body, owner)

    @rpc
    def set_product_images(self, product_id, data: dict, supplier_id=None) -> dict:
        """PUT /products/{id}/images: the gallery, up to nine, the first is the cover."""
        body = validated(ProductImagesIn, data)
        owner = None if supplier_id is None else an_id(supplier_id, "supplier")
        with self.db.unit_of_work() as uow:
            return uow.once(
                lambda: gallery.set_images(
                    uow, self.rules, an_id(product_id, "product"), body, owner
                )
            )

    @rpc
    def browse(self, query: dict | None = None) -> dict:
        q = validated(ProductQuery, query or {})
        with self.fast_read() as conn:
            return queries.browse(conn, self.rules, q.category, q.q, q.limit, q.cursor, q.sort)

    @rpc
    def get_product(self, product_id) -> dict:
        found = self.get_products([product_id]) if str(product_id).isdigit() else []
        if not found:
            raise NotFound(f"product {product_id} not found", code="product_not_found")
        return found[0]

    @rpc
    def get_products(self, ids) -> list[dict]:
        if not isinstance(ids, list):
            raise ValidationFailed(
                "ids must be a list of product ids",
                details=[{"field": "ids", "message": "expected a list"}],
            )
        wanted = [int(i) for i in ids if not isinstance(i, bool) and str(i).isdigit()][:1000]
        with self.fast_read() as conn:
            return queries.get_products(conn, wanted)

    @rpc
    def get_image(self, image_ref: str) -> dict:
        with self.db.read() as session:
            return queries.get_image(session, str(image_ref))

    # --- stock --------------------------------------------------------------------------------
    @rpc
    def grant_stock(self, grant_id, items) -> dict:
        """Units for orders' pool: per line up to the stock there is (0 when the product is
        unknown, delisted or its supplier suspended); idempotent per ``grant_id``
        (``allotments.grant``)."""
        body = validated(GrantIn, {"grant_id": grant_id, "items": items})
        lines = [i.model_dump() for i in body.items]
        try:
            with self.db.unit_of_work() as uow:
                return allotments.grant(uow, body.grant_id, lines)
        except IntegrityError as exc:  # the same grant id raced in: answer the winner's rows
            if not stock.is_duplicate_key(exc):
                raise
            with self.db.read() as session:
                return allotments.recorded(session, body.grant_id, merge_lines(lines))

    @rpc
    def reserve_stock(self, reservation_id, items, hold_seconds=None) -> dict:
        """Hold ``items`` for ``hold_seconds`` (the buyer's deadline to pay; orders passes its
        unpaid-order expiry) plus the catalog's ``reservation_grace_seconds``."""
        body = validated(
            ReserveIn,
            {"reservation_id": reservation_id, "items": items, "hold_seconds": hold_seconds},
        )
        lines = [i.model_dump() for i in body.items]
        try:
            with self.db.unit_of_work() as uow:
                return stock.reserve(uow, self.rules, body.reservation_id, lines, body.hold_seconds)
        except IntegrityError as exc:  # the same reservation id raced in: answer its outcome
            if not stock.is_duplicate_key(exc):
                raise
            with self.db.read() as session:
                found = queries.find_reservation(session, body.reservation_id)
            if found is None:
                raise
            return found

    @rpc
    def commit_stock(self, reservation_id) -> dict:
        with self.db.unit_of_work() as uow:
            return stock.commit(uow, str(reservation_id))

    @rpc
    def release_stock(self, reservation_id, paid=False, items=None) -> dict:
        """``paid``: the order was paid (a full refund before shipping): the stock goes back
        whether or not ``order_paid`` was consumed yet (``stock.release``). ``items``: the
        lines of an order whose units came from orders' pool; paid and not yet recorded, it
        is recorded as returned and the units go back on sale (``allotments.release``)."""
        if items is None:
            with self.db.unit_of_work() as uow:
                return stock.release(uow, str(reservation_id), paid=bool(paid))
        body = validated(
            ReleaseIn, {"reservation_id": str(reservation_id), "paid": paid, "items": items}
        )
        lines = [i.model_dump() for i in body.items or []]
        with self.db.unit_of_work() as uow:
            return allotments.release(uow, body.reservation_id, body.paid, lines)

    @batch_event_handler("orders", "order_paid")
    def on_order_paid(self, events: list[dict]):
        """Commit the paid orders' reservations (no RPC on the payment's path): a batch of
        ``order_paid`` per transaction (``shared.events``), idempotent per event (inbox) and
        per reservation (its state machine: a committed or returned one stays). A paid order
        whose stock cannot be committed — its hold lapsed and the stock is gone, or it was
        never reserved — is flagged, in the same transaction: logged for the supplier (refund
        or restock) and told to orders (``stock_commit_refused``), which marks the order
        ``commit_refused`` as when its own ``commit_stock`` call is refused. An order whose
        units came from orders' pool (``allotted``) is recorded as sold out of ``allotted``
        (``allotments.sell_from_pool``), never refused."""
        paid = {e["id"]: validated(OrderPaid, e.get("data")) for e in events}
        with self.db.unit_of_work() as uow:
            fresh = [paid[e["id"]] for e in uow.claim_all(events, "on_order_paid")]
            # no reservation_id: an older message, whose stock orders committed by RPC
            orders = {p.reservation_id: p for p in fresh if p.reservation_id and not p.allotted}
            # from orders' pool: no reservation here; recorded as committed, never refused
            pool = [p for p in fresh if p.allotted and p.reservation_id]
            if pool and orders:  # two sorted passes below: every row lock first, in order
                sold = (line.product_id for p in pool for line in p.lines)
                allotments.lock_products_of(uow.session, sold, list(orders))
            allotments.sell_from_pool(uow, pool)
            for reservation_id, outcome in stock.commit_paid(uow, list(orders)).items():
                if isinstance(outcome, str):
                    continue
                order = orders[reservation_id]
                log.error(
                    "paid order %s: its stock could not be committed (%s); the supplier "
                    "refunds or restocks",
                    order.order_id,
                    outcome,
                )
                uow.emit(
                    "stock_commit_refused",
                    StockCommitRefused(
                        order_id=order.order_id,
                        supplier_id=order.supplier_id,
                        reservation_id=reservation_id,
                        reason=outcome.code,
                        at=clock.iso(clock.now()),
                    ),
                )

    @rpc
    def expire_reservations(self) -> dict:
        """Release every held reservation whose ``expires_at`` has come (platform clock):
        orders that were never paid give their stock back."""
        with self.db.read() as session:
            ids = queries.expired_reservation_ids(session, clock.now())
        released = []
        for reservation_id in ids:
            with self.db.unit_of_work() as uow:
                if stock.release(uow, reservation_id)["status"] == "released":
                    released.append(reservation_id)
        if released:
            log.info("released %d expired stock reservations", len(released))
        return {"released": released}

    @configured_timer("reservation_sweep_seconds", 30.0)
    def sweep_reservations(self):
        self.expire_reservations()

    # --- reclaims of orders' pool -------------------------------------------------------------
    def _reclaim_call(self) -> Callable[..., Any]:
        """orders' ``reclaim_stock`` within the caller's deadline (``shared.rpc``): a call that
        fails or runs out of time is ServiceUnavailable (503)."""
        return self.deadline.call(self.orders_rpc, "orders").reclaim_stock

    def _reclaiming(
        self, product_ids_of: Callable[[Any], list[int]], change: Callable[[Any], dict]
    ) -> dict:
        """``change(uow)`` (once per idempotency key), after orders gave back the free units
        of ``product_ids_of(session)`` in its pool — so nothing is sold beyond what the change
        says. (a) a reclaim is recorded owed in its own transaction, when units of them are
        out at orders (none: no call, today's path); (b) in the change's transaction the
        products are locked, orders is called and its answer applied, then the change;
        (c) orders not answering: 503, nothing of the change happened, and the timer
        (``retry_reclaims``) calls the owed reclaim again."""
        wanted: list[int] | None = None
        for _ in range(RECLAIM_ATTEMPTS):
            reclaim_id = self._owe_reclaim(product_ids_of, wanted)
            try:
                with self.db.unit_of_work() as uow:

                    def reclaimed_then_changed(uow: Any = uow, rid: str | None = reclaim_id):
                        ids = product_ids_of(uow.session)
                        if rid is None:  # nothing was out at orders: the change as always,
                            done = change(uow)  # then a look under its own row locks
                            allotments.nothing_out(uow.session, ids)
                            return done
                        allotments.reclaim(uow, rid, ids, self._reclaim_call())
                        return change(uow)

                    return uow.once(reclaimed_then_changed)
            except allotments.ReclaimFirst as first:
                wanted = first.product_ids
        raise ServiceUnavailable(
            "stock is being granted faster than it can be reclaimed; retry", code="busy"
        )

    def _owe_reclaim(
        self, product_ids_of: Callable[[Any], list[int]], wanted: list[int] | None
    ) -> str | None:
        """(a) of ``_reclaiming``: the reclaim recorded owed, committed on its own, when units
        of the products are out at orders (``wanted``: they were found so under the locks);
        None (one read, nothing written) when none are."""
        if wanted is None:
            with self.db.read() as session:
                wanted = allotments.reclaim_targets(session, product_ids_of(session))
        if not wanted:
            return None
        with self.db.unit_of_work() as uow:
            return allotments.owe(uow, wanted)

    @rpc
    def retry_owed_reclaims(self) -> dict:
        """Call every owed reclaim at least ``reclaim_retry_seconds`` old again (same id:
        orders answers a repeat as the first) and apply its answer once."""
        older_than = clock.now() - timedelta(seconds=self.rules.reclaim_retry_seconds)
        with self.db.read() as session:
            owed = allotments.owed_reclaims(session, older_than)
        applied = []
        for reclaim_id, product_ids in owed:
            try:
                with self.db.unit_of_work() as uow:
                    call = self._reclaim_call()
                    if allotments.retry_reclaim(uow, reclaim_id, product_ids, call):
                        applied.append(reclaim_id)
            except (ServiceUnavailable, allotments.ReclaimFirst) as exc:
                log.warning("owed stock reclaim %s not applied yet: %s", reclaim_id, exc)
            except Exception:  # e.g. an answer orders should not give: the others still go on
                log.exception("owed stock reclaim %s failed; retried on the next tick", reclaim_id)
        if applied:
            log.info("applied %d owed stock reclaims", len(applied))
        return {"applied": applied, "owed": len(owed) - len(applied)}

    @configured_timer("reclaim_retry_seconds", 10.0)
    def retry_reclaims(self):
        self.retry_owed_reclaims()


def _owned(session: Any, product_id: int, owner: int | None) -> list[int]:
    """``[product_id]`` when the product exists (and is ``owner``'s, when given), else []:
    a change that will be refused reclaims nothing."""
    stmt = select(Product.id).where(Product.id == product_id)
    if owner is not None:
        stmt = stmt.where(Product.supplier_id == owner)
    return list(session.scalars(stmt))
