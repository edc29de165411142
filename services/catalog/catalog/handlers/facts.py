"""Product facts: the specs, FAQ and after-sales policy a supplier gives its product, which
keepers answer buyers' questions with (PRODUCT.md "Conversations"). A change is a
``product_changed`` event like any other: the facts travel in the product snapshot."""

from __future__ import annotations

from typing import Any

from catalog.handlers.products import _owned_product
from catalog.queries import product_dict, snapshot
from shared import clock
from shared.contracts.catalog import ProductFactsIn


def set_facts(uow: Any, product_id: int, body: ProductFactsIn, supplier_id: int | None) -> dict:
    """The FAQ is replaced; specs and the policy are replaced when given. ``supplier_id``
    None: an admin edit; otherwise only the supplier's own product (404 for another's)."""
    p = _owned_product(uow.session, product_id, supplier_id)
    p.faq = [{"q": e.q, "a": e.a} for e in body.faq]
    if body.specs is not None:
        p.specs = dict(body.specs)
    if body.after_sales_policy is not None:
        p.after_sales_policy = body.after_sales_policy
    p.updated_at = clock.now()
    uow.emit("product_changed", snapshot(p))
    out = product_dict(p)
    return {
        "product_id": out["id"],
        "faq": out["faq"],
        "specs": out["specs"],
        "after_sales_policy": out["after_sales_policy"],
        "updated_at": clock.iso(p.updated_at),
    }
