"""Selections: a keeper picks catalog products into their shop, each with a plain-text reason,
up to ``domain.pick_limit(rules)`` (1,000) products."""

from __future__ import annotations

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from shared import clock
from shared.contracts.events import SelectionChanged
from shared.contracts.shop import SelectionIn
from shared.errors import Conflict, RuleViolation, rule
from shop import domain, queries
from shop.domain import ShopRules
from shop.handlers._races import LostRace
from shop.handlers.read_model import bump_views
from shop.models import CatalogProduct, Selection, Shop


def take_pick_slot(session, shop_id: int, rules: ShopRules) -> bool:
    """``domain.can_pick`` as one conditional UPDATE: the counter only moves while below the
    limit, so two concurrent picks at 999 cannot both pass."""
    return (
        session.execute(
            update(Shop)
            .where(Shop.id == shop_id, Shop.selection_count < domain.pick_limit(rules))
            .values(selection_count=Shop.selection_count + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )


def _not_listed(product_id: int) -> RuleViolation:
    return RuleViolation(
        "this product is not listed in the catalog",
        details=[
            rule("product_not_listed", "only listed products can be picked", product_id=product_id)
        ],
    )


def select_product(
    uow, rules: ShopRules, actor: dict, shop_id: int, product_id: int, command: SelectionIn
) -> dict:
    """Pick the product (or edit the reason of a pick). The product must be in the read model
    already (the entrypoint fetched it from catalog if it was not)."""
    reason = domain.clean_reason(command.reason, rules)
    session = uow.session
    shop = queries.load_shop(session, shop_id)
    domain.ensure_keeper(actor, shop.member_id, shop_id=shop.id)
    product = session.get(CatalogProduct, product_id)
    if product is None:  # delisted and gone between the fetch and now: not pickable
        raise _not_listed(product_id)
    sel = session.get(Selection, (shop.id, product_id))
    if sel is None:
        if product.status != "listed":
            raise _not_listed(product_id)
        # the rule on the row read, then the same test atomically in SQL (a concurrent pick)
        if not domain.can_pick(shop.selection_count, rules) or not take_pick_slot(
            session, shop.id, rules
        ):
            raise domain.selection_limit_reached(domain.pick_limit(rules))
        sel = Selection(
            shop_id=shop.id, product_id=product_id, reason=reason, selected_at=clock.now()
        )
        session.add(sel)
        try:
            session.flush()
        except IntegrityError as exc:  # the same product picked twice at once: edit instead
            raise LostRace(Conflict("the selection changed concurrently; try again")) from exc
    else:
        sel.reason = reason
    bump_views(session, shop.id)
    session.flush()
    uow.emit(
        "selection_changed",
        SelectionChanged(shop_id=shop.id, product_id=product_id, selected=True, reason=reason),
    )
    return queries.selection_dict(shop.id, product, sel)


def unselect_product(uow, actor: dict, shop_id: int, product_id: int) -> None:
    """Remove the pick (nothing happens when it was not picked)."""
    session = uow.session
    shop = queries.load_shop(session, shop_id)
    domain.ensure_keeper(actor, shop.member_id, shop_id=shop.id)
    gone = session.execute(
        delete(Selection)
        .where(Selection.shop_id == shop.id, Selection.product_id == product_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not gone:
        return
    session.execute(
        update(Shop)
        .where(Shop.id == shop.id)
        .values(selection_count=Shop.selection_count - 1, view_version=Shop.view_version + 1)
        .execution_options(synchronize_session=False)
    )
    uow.emit(
        "selection_changed",
        SelectionChanged(shop_id=shop.id, product_id=product_id, selected=False, reason=None),
    )
