"""The shop's read model of catalog products (``catalog_products``): fed by catalog's
``product_listed/changed/delisted`` (newest ``occurred_at`` wins, each event applied once), or,
for a product picked before any event about it arrived, by one catalog ``get_product``.

Every change a public view shows bumps the view version of the shops showing it, in the same
transaction, so a cached rendering (``queries.VIEWS``) is never stale."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from shared import clock
from shared.contracts.events import ProductSnapshot
from shop.models import CatalogProduct, Selection, Shop


def bump_views(session, *shop_ids: int) -> None:
    """The public view of these shops changed: cached renderings of them are now stale."""
    if shop_ids:
        session.execute(
            update(Shop)
            .where(Shop.id.in_(shop_ids))
            .values(view_version=Shop.view_version + 1)
            .execution_options(synchronize_session=False)
        )


def _values(snapshot: ProductSnapshot, occurred_at: datetime) -> dict[str, Any]:
    return {
        "product_id": snapshot.product_id,
        "supplier_id": snapshot.supplier_id,
        "title": snapshot.title[:300],
        "category": snapshot.category,
        "price_fen": snapshot.price_fen,
        "commission_bps": snapshot.commission_bps,
        "stock": snapshot.stock,
        "status": snapshot.status,
        "available": bool(snapshot.available),
        "image_url": snapshot.image_url,
        "brand": snapshot.brand,
        "occurred_at": (  # a naive instant (SQLite, some producers) is UTC
            occurred_at if occurred_at.tzinfo else occurred_at.replace(tzinfo=clock.UTC)
        ).astimezone(clock.UTC),
    }


def upsert_product(session, snapshot: ProductSnapshot, occurred_at: datetime) -> bool:
    """Insert or replace the snapshot unless the stored one occurred later (out-of-order
    events keep the newest). One statement, so concurrent writers cannot interleave."""
    values = _values(snapshot, occurred_at)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(CatalogProduct).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[CatalogProduct.product_id],
        set_={k: stmt.excluded[k] for k in values if k != "product_id"},
        where=CatalogProduct.occurred_at <= stmt.excluded.occurred_at,
    )
    applied = session.execute(stmt).rowcount == 1
    if applied:  # every shop showing this product shows something new
        shop_ids = session.scalars(
            select(Shop.id)
            .where(
                Shop.id.in_(
                    select(Selection.shop_id).where(Selection.product_id == values["product_id"])
                )
            )
            .order_by(Shop.id)
            .with_for_update()
        ).all()  # id order: no lock-order deadlocks
        bump_views(session, *shop_ids)
    return applied


def product_event(uow, event: dict, handler: str, snapshot: ProductSnapshot) -> bool:
    """A catalog product event, once per ``event.id``; False when it was already applied or an
    event that occurred later is already stored."""
    occurred = clock.parse(event["occurred_at"]) if event.get("occurred_at") else clock.now()
    if not uow.claim(event, handler):
        return False
    return upsert_product(uow.session, snapshot, occurred)


def product_fetched(uow, product: dict, fetched_at: datetime) -> bool:
    """A product catalog's ``get_product`` answered (stored like an event of ``fetched_at``)."""
    data = dict(product)
    data.setdefault("product_id", data.get("id"))
    return upsert_product(uow.session, ProductSnapshot.model_validate(data), fetched_at)
