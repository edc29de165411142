"""Entrypoints of the catalog service: each one validates, opens a unit of work, applies a rule.

RPC surface (HELPER_BRIEF): register_supplier, pay_deposit, get_supplier, get_supplier_contact,
suspend_supplier, reinstate_supplier, create_product, update_product, delist_product,
relist_product, browse, get_product, get_products, get_image, reserve_stock, commit_stock,
release_stock (and expire_reservations, which the timer also runs).
"""

from __future__ import annotations

import base64
import logging
from contextlib import contextmanager

from nameko.rpc import rpc
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError

from catalog import handlers
from catalog.domain import CatalogRules
from catalog.models import Base
from shared.config import rules
from shared.contracts.catalog import (
    DepositIn,
    ProductIn,
    ProductPatch,
    ProductQuery,
    ReserveIn,
    SupplierIn,
)
from shared.db import Database
from shared.errors import NotFound, ValidationFailed
from shared.platform import PlatformRpc
from shared.timers import configured_timer

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


def validated(model: type[BaseModel], data) -> BaseModel:
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ValidationFailed(
            "the request is invalid",
            details=[
                {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False)
            ],
        )


def an_id(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        raise NotFound(f"{what} {value!r} not found", code=f"{what}_not_found")
    return int(value)


class CatalogService(PlatformRpc):
    name = "catalog"
    db = Database(Base.metadata)

    @property
    def rules(self) -> CatalogRules:
        return CatalogRules.from_config(rules(self.config))

    @contextmanager
    def fast_read(self):
        """A plain autocommit connection for the hot single-statement reads (browse, batch
        get_products): no BEGIN/ROLLBACK round trips around one SELECT."""
        with self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn

    # --- suppliers ----------------------------------------------------------------------------
    @rpc
    def register_supplier(self, data: dict) -> dict:
        body = validated(SupplierIn, data).model_dump()
        with self.db.unit_of_work() as uow:
            return handlers.register_supplier(uow, self.rules, body)

    @rpc
    def pay_deposit(self, supplier_id, amount_fen) -> dict:
        body = validated(DepositIn, {"amount_fen": amount_fen})
        with self.db.unit_of_work() as uow:
            return handlers.pay_deposit(uow, an_id(supplier_id, "supplier"), body.amount_fen)

    @rpc
    def get_supplier(self, supplier_id) -> dict:
        with self.db.read() as session:
            return handlers.supplier_dict(
                handlers.load_supplier(session, an_id(supplier_id, "supplier"))
            )

    @rpc
    def get_supplier_contact(self, supplier_id) -> dict:
        with self.db.read() as session:
            return handlers.contact_dict(
                handlers.load_supplier(session, an_id(supplier_id, "supplier"))
            )

    @rpc
    def suspend_supplier(self, supplier_id, reason: str | None = None) -> dict:
        with self.db.unit_of_work() as uow:
            return handlers.suspend_supplier(uow, an_id(supplier_id, "supplier"), reason)

    @rpc
    def reinstate_supplier(self, supplier_id) -> dict:
        with self.db.unit_of_work() as uow:
            return handlers.reinstate_supplier(uow, an_id(supplier_id, "supplier"))

    # --- products -----------------------------------------------------------------------------
    @rpc
    def create_product(self, supplier_id, data: dict) -> dict:
        body = validated(ProductIn, data).model_dump()
        with self.db.unit_of_work() as uow:
            return handlers.create_product(uow, self.rules, an_id(supplier_id, "supplier"), body)

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
            return handlers.update_product(
                uow, self.rules, an_id(product_id, "product"), body, owner
            )

    @rpc
    def delist_product(self, product_id, supplier_id=None) -> dict:
        owner = None if supplier_id is None else an_id(supplier_id, "supplier")
        with self.db.unit_of_work() as uow:
            return handlers.delist_product(uow, an_id(product_id, "product"), owner)

    @rpc
    def relist_product(self, product_id, supplier_id=None) -> dict:
        owner = None if supplier_id is None else an_id(supplier_id, "supplier")
        with self.db.unit_of_work() as uow:
            return handlers.relist_product(uow, an_id(product_id, "product"), owner)

    @rpc
    def browse(self, query: dict | None = None) -> dict:
        q = validated(ProductQuery, query or {})
        with self.fast_read() as conn:
            return handlers.browse(conn, self.rules, q.category, q.q, q.limit, q.cursor)

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
            return handlers.get_products(conn, wanted)

    @rpc
    def get_image(self, image_ref: str) -> dict:
        with self.db.read() as session:
            img = handlers.get_image(session, str(image_ref))
            return {
                "image_ref": img.ref,
                "content_type": img.content_type,
                "data_b64": base64.b64encode(img.data).decode("ascii"),
                "width": img.width,
                "height": img.height,
            }

    # --- stock --------------------------------------------------------------------------------
    @rpc
    def reserve_stock(self, reservation_id, items, hold_seconds=None) -> dict:
        body = validated(ReserveIn, {"reservation_id": reservation_id, "items": items})
        lines = [i.model_dump() for i in body.items]
        try:
            with self.db.unit_of_work() as uow:
                return handlers.reserve(uow, body.reservation_id, lines)
        except IntegrityError as exc:  # the same reservation id raced in: answer its outcome
            if not handlers.is_duplicate_key(exc):
                raise
            with self.db.read() as session:
                found = handlers.find_reservation(session, body.reservation_id)
            if found is None:
                raise
            return found

    @rpc
    def commit_stock(self, reservation_id) -> dict:
        with self.db.unit_of_work() as uow:
            return handlers.commit(uow, str(reservation_id))

    @rpc
    def release_stock(self, reservation_id) -> dict:
        with self.db.unit_of_work() as uow:
            return handlers.release(uow, str(reservation_id))

    @rpc
    def expire_reservations(self) -> dict:
        """Release every held reservation older than ``reservation_ttl_seconds`` (platform
        clock): orders that were never paid give their stock back."""
        with self.db.read() as session:
            ids = handlers.expired_reservation_ids(session, self.rules)
        released = []
        for reservation_id in ids:
            with self.db.unit_of_work() as uow:
                if handlers.release(uow, reservation_id)["status"] == "released":
                    released.append(reservation_id)
        if released:
            log.info("released %d expired stock reservations", len(released))
        return {"released": released}

    @configured_timer("reservation_sweep_seconds", 30.0)
    def sweep_reservations(self):
        self.expire_reservations()
