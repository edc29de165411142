"""HTTP routes of the catalog service (API.md): suppliers, products, browsing, images."""

from __future__ import annotations

import base64

from pydantic import BaseModel, Field
from werkzeug.wrappers import Response

from gateway.api import route
from shared.contracts.catalog import (
    DepositIn,
    ProductImagesIn,
    ProductIn,
    ProductOut,
    ProductPatch,
    ProductQuery,
    SupplierIn,
    SupplierRegistered,
)
from shared.errors import ServiceUnavailable
from shared.money import apply_bps
from shared.validation import not_found


class SuspendIn(BaseModel):
    reason: str | None = Field(None, max_length=500)


def _own_supplier(req, supplier_id: int) -> None:
    """A supplier acts only on itself; the admin on anyone. Another supplier's account answers
    the very 404 of a missing one (catalog's ``supplier_not_found``), so ids cannot be probed."""
    p = req.principal
    if not p.is_admin and not (p.role == "supplier" and p.sub == str(supplier_id)):
        raise not_found("supplier", supplier_id)


def _acting_supplier(req):
    """The supplier id an ownership check runs against (None: the admin, who may act on all)."""
    return None if req.principal.is_admin else int(req.principal.sub)


class CatalogRoutes:
    def _absolute(self, product: dict) -> dict:
        url = product.get("image_url")
        if url and url.startswith("/"):
            product["image_url"] = self.public_url() + url
        if product.get("images"):
            product["images"] = [
                self.public_url() + u if u.startswith("/") else u for u in product["images"]
            ]
        return product

    def _keeper_bonus_bps(self, req) -> int | None:
        """The signed-in keeper's current level bonus (shop's ``level_of``, once per request);
        None for anyone who is not a keeper (no member token, or no shop), or while shop is
        unavailable (the catalog still answers, without ``keeper_earn_fen``)."""
        p = req.principal
        if p is None or p.role != "member":
            return None
        try:
            level = self.rpc("shop").level_of(p.sub)
        except ServiceUnavailable:  # browsing goes on without the keeper's figure
            return None
        return None if level.get("shop_id") is None else int(level["bonus_bps"])

    # --- suppliers ----------------------------------------------------------------------------
    @route(
        "POST",
        "/api/v1/suppliers",
        body=SupplierIn,
        status=201,
        response=SupplierRegistered,
        summary="Register a supplier (422 naming every qualification rule it breaks)",
        tags=["suppliers"],
        limit="signup",
    )
    def register_supplier(self, req):
        supplier = self.rpc("catalog").register_supplier(req.body.model_dump())
        return {**supplier, "token": self.tokens.issue("supplier", supplier["id"])}

    @route(
        "GET",
        "/api/v1/suppliers/<int:supplier_id>",
        auth=("supplier", "admin"),
        summary="A supplier's account (that supplier or the admin)",
        tags=["suppliers"],
    )
    def get_supplier(self, req):
        _own_supplier(req, req.params["supplier_id"])
        return self.rpc("catalog").get_supplier(req.params["supplier_id"])

    @route(
        "POST",
        "/api/v1/suppliers/<int:supplier_id>/deposit",
        body=DepositIn,
        auth=("supplier", "admin"),
        summary="Pay (part of) the deposit; the supplier becomes active once it is met",
        tags=["suppliers"],
    )
    def pay_deposit(self, req):
        _own_supplier(req, req.params["supplier_id"])
        return self.rpc("catalog").pay_deposit(req.params["supplier_id"], req.body.amount_fen)

    @route(
        "POST",
        "/api/v1/admin/suppliers/<int:supplier_id>/suspend",
        body=SuspendIn,
        auth=("admin",),
        summary="Suspend a supplier: its products become unavailable",
        tags=["admin"],
    )
    def suspend_supplier(self, req):
        return self.rpc("catalog").suspend_supplier(req.params["supplier_id"], req.body.reason)

    @route(
        "POST",
        "/api/v1/admin/suppliers/<int:supplier_id>/reinstate",
        auth=("admin",),
        summary="Reinstate a suspended supplier",
        tags=["admin"],
    )
    def reinstate_supplier(self, req):
        return self.rpc("catalog").reinstate_supplier(req.params["supplier_id"])

    # --- products -----------------------------------------------------------------------------
    @route(
        "POST",
        "/api/v1/products",
        body=ProductIn,
        status=201,
        response=ProductOut,
        auth=("supplier",),
        summary="List a product (active suppliers; 422 naming the rule)",
        tags=["products"],
    )
    def create_product(self, req):
        return self._absolute(
            self.rpc("catalog").create_product(req.principal.sub, req.body.model_dump())
        )

    @route(
        "GET",
        "/api/v1/products",
        query=ProductQuery,
        summary="Browse listed, in-stock products with their exact commission, sorted by "
        "newest, commission or sales; a signed-in keeper also sees keeper_earn_fen (the "
        "commission including the keeper's level bonus)",
        tags=["products"],
        limit="lookup",
    )
    def browse_products(self, req):
        page = self.rpc("catalog").browse(req.query.model_dump())
        bonus = self._keeper_bonus_bps(req) if page["items"] else None
        for item in page["items"]:
            self._absolute(item)
            if bonus is not None:
                item["keeper_earn_fen"] = apply_bps(
                    item["price_fen"], item["commission_bps"] + bonus
                )
        return page

    @route(
        "GET",
        "/api/v1/products/<int:product_id>",
        response=ProductOut,
        summary="One product",
        tags=["products"],
        limit="lookup",
    )
    def get_product(self, req):
        return self._absolute(self.rpc("catalog").get_product(req.params["product_id"]))

    @route(
        "PATCH",
        "/api/v1/products/<int:product_id>",
        body=ProductPatch,
        response=ProductOut,
        auth=("supplier", "admin"),
        summary="Edit one of your products",
        tags=["products"],
    )
    def update_product(self, req):
        return self._absolute(
            self.rpc("catalog").update_product(
                req.params["product_id"],
                req.body.model_dump(exclude_unset=True),
                _acting_supplier(req),
            )
        )

    @route(
        "POST",
        "/api/v1/products/<int:product_id>/delist",
        response=ProductOut,
        auth=("supplier", "admin"),
        summary="Delist one of your products",
        tags=["products"],
    )
    def delist_product(self, req):
        return self._absolute(
            self.rpc("catalog").delist_product(req.params["product_id"], _acting_supplier(req))
        )

    @route(
        "POST",
        "/api/v1/products/<int:product_id>/relist",
        response=ProductOut,
        auth=("supplier", "admin"),
        summary="Relist one of your products",
        tags=["products"],
    )
    def relist_product(self, req):
        return self._absolute(
            self.rpc("catalog").relist_product(req.params["product_id"], _acting_supplier(req))
        )

    @route(
        "PUT",
        "/api/v1/products/<int:product_id>/images",
        body=ProductImagesIn,
        response=ProductOut,
        auth=("supplier", "admin"),
        summary="The product's gallery: up to 9 images (url or image_base64) in order, the "
        "first is the cover",
        tags=["products"],
    )
    def put_product_images(self, req):
        return self._absolute(
            self.rpc("catalog").set_product_images(
                req.params["product_id"],
                req.body.model_dump(exclude_none=True),
                _acting_supplier(req),
            )
        )

    @route(
        "GET",
        "/api/v1/images/<string:image_ref>",
        produces="image/*",
        summary="An uploaded product image (by content hash)",
        tags=["products"],
        limit="lookup",
    )
    def get_image(self, req):
        img = self.rpc("catalog").get_image(req.params["image_ref"])
        return Response(
            base64.b64decode(img["data_b64"]),
            status=200,
            mimetype=img["content_type"],
            headers={
                "Cache-Control": "public, max-age=31536000, immutable",
                "ETag": f'"{req.params["image_ref"]}"',
            },
        )
