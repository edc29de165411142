"""Entrypoints of the catalog service: each one validates with the contract model, opens a unit of
work (or a read), and calls one handler (``catalog.handlers``) or query (``catalog.queries``).

RPC surface (README.md): register_supplier, pay_deposit, get_supplier, get_supplier_contact,
suspend_supplier, reinstate_supplier, create_product, update_product, delist_product,
relist_product, set_product_facts, set_product_images, browse, get_product, get_products,
get_image, reserve_stock, commit_stock, release_stock (and expire_reservations, which the timer
also runs).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from catalog import queries
from catalog.domain import CatalogRules
from catalog.handlers import facts, gallery, products, stock, suppliers
from catalog.models import Base
from shared import clock
from shared.contracts.catalog import (
    DepositIn,
    ProductFactsIn,
    ProductImagesIn,
    ProductIn,
    ProductPatch,
    ProductQuery,
    ReserveIn,
    SupplierIn,
)
from shared.contracts.events import OrderPaid, StockCommitRefused
from shared.db import Database
from shared.errors import NotFound, ValidationFailed
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


class CatalogService(PlatformRpc):
    name = "catalog"
    db = Database(Base.metadata)

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
        with self.db.unit_of_work() as uow:
            return uow.once(lambda: suppliers.suspend(uow, an_id(supplier_id, "supplier"), reason))

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
        with self.db.unit_of_work() as uow:
            return uow.once(
                lambda: products.update(uow, self.rules, an_id(product_id, "product"), body, owner)
            )

    @rpc
    def delist_product(self, product_id, supplier_id=None) -> dict:
        owner = None if supplier_id is None else an_id(supplier_id, "supplier")
        with self.db.unit_of_work() as uow:
            return uow.once(lambda: products.delist(uow, an_id(product_id, "product"), owner))

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
    def release_stock(self, reservation_id, paid=False) -> dict:
        """``paid``: the order was paid (a full refund before shipping): the stock goes back
        whether or not ``order_paid`` was consumed yet (``stock.release``)."""
        with self.db.unit_of_work() as uow:
            return stock.release(uow, str(reservation_id), paid=bool(paid))

    @batch_event_handler("orders", "order_paid")
    def on_order_paid(self, events: list[dict]):
        """Commit the paid orders' reservations (no RPC on the payment's path): a batch of
        ``order_paid`` per transaction (``shared.events``), idempotent per event (inbox) and
        per reservation (its state machine: a committed or returned one stays). A paid order
        whose stock cannot be committed — its hold lapsed and the stock is gone, or it was
        never reserved — is flagged, in the same transaction: logged for the supplier (refund
        or restock) and told to orders (``stock_commit_refused``), which marks the order
        ``commit_refused`` as when its own ``commit_stock`` call is refused."""
        paid = {e["id"]: validated(OrderPaid, e.get("data")) for e in events}
        with self.db.unit_of_work() as uow:
            fresh = [paid[e["id"]] for e in uow.claim_all(events, "on_order_paid")]
            # no reservation_id: an older message, whose stock orders committed by RPC
            orders = {p.reservation_id: p for p in fresh if p.reservation_id}
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
