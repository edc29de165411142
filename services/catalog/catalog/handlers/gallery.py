"""The product gallery: up to nine photos in order, the first is the cover (``image_url`` /
``image_ref``, what shops, posters and orders show)."""

from __future__ import annotations

from typing import Any

from catalog import domain
from catalog.domain import CatalogRules
from catalog.handlers.products import _owned_product, _store_image
from catalog.queries import product_dict, snapshot
from shared import clock
from shared.contracts.catalog import ProductImagesIn
from shared.errors import RuleViolation


def set_images(
    uow: Any, r: CatalogRules, product_id: int, body: ProductImagesIn, supplier_id: int | None
) -> dict:
    """Replace the gallery (uploads stored once per content hash); the cover follows the first
    image. ``supplier_id`` None: an admin edit; otherwise only the supplier's own product."""
    problems = domain.gallery_problems(len(body.images))
    if problems:
        raise RuleViolation("too many images", details=problems, code="gallery_rejected")
    p = _owned_product(uow.session, product_id, supplier_id)
    gallery: list[dict] = []
    for image in body.images:
        if image.image_base64:
            gallery.append({"ref": _store_image(uow, r, image.image_base64)})
        else:
            gallery.append({"url": image.url})
    before = snapshot(p).model_dump()
    p.images = gallery
    cover = gallery[0] if gallery else {}
    p.image_url, p.image_ref = cover.get("url"), cover.get("ref")
    p.updated_at = clock.now()
    after = snapshot(p)
    if domain.snapshot_changed(before, after.model_dump()):
        uow.emit("product_changed", after)
    return product_dict(p)
