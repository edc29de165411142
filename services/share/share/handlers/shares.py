"""Shares: only the keeper of an active shop shares a product the shop selected and that is
available; the same shop and product give the same share unless a fresh one is asked for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from share import domain
from share.models import Share
from share.queries.shares import Remote, share_dict
from shared import clock
from shared.contracts.share import CreateShare
from shared.errors import Conflict, NotFound, RuleViolation, rule
from shared.ids import new_id
from shared.validation import not_found


@dataclass(frozen=True)
class Shareable:
    """What catalog and shop said when the share was asked for (the share's first facts)."""

    shop: dict
    selection: dict
    product: dict


def check_shareable(remote: Remote, cmd: CreateShare) -> Shareable:
    """The sharing rules of PRODUCT.md, asked of shop and catalog (404/409/422 naming each).
    Another keeper's shop answers the shop service's own 404 for a missing shop."""
    shop = remote.shop.get_shop(cmd.shop_id)
    if int(shop["member_id"]) != cmd.member_id:
        raise not_found("shop", cmd.shop_id)
    if shop.get("status") != "active":
        raise Conflict(
            "the shop is not active yet: it cannot share or sell",
            code="shop_not_active",
            details={"status": shop.get("status")},
        )
    try:
        selection = remote.shop.get_selection(cmd.shop_id, cmd.product_id)
    except NotFound:
        selection = {"selected": False}
    if not selection.get("selected"):
        raise RuleViolation(
            "the shop has not selected this product",
            details=[rule("product_selected", "a shop shares only products it has selected")],
        )
    try:
        product = remote.catalog.get_product(cmd.product_id)
    except NotFound as exc:
        raise RuleViolation(
            "no such product", details=[rule("product_exists", "the product does not exist")]
        ) from exc
    if not product.get("available") or selection.get("available") is False:
        raise Conflict(
            "the product is not available (delisted or out of stock)",
            code="product_unavailable",
        )
    return Shareable(shop, selection, product)


def share_for(uow: Any, cmd: CreateShare) -> dict:
    """The shop's latest share of the product (unless ``fresh``), else a new one with a new
    code. A code collision (60 random bits: practically never) fails the flush with an
    IntegrityError; the entrypoint retries with a new unit of work."""
    if not cmd.fresh:
        row = uow.session.execute(
            select(Share)
            .where(Share.shop_id == cmd.shop_id, Share.product_id == cmd.product_id)
            .order_by(Share.created_at.desc(), Share.id)
            .limit(1)
        ).scalar_one_or_none()
        if row is not None:
            return share_dict(row)
    row = Share(
        id=new_id(),
        code=domain.new_code(),
        shop_id=cmd.shop_id,
        product_id=cmd.product_id,
        member_id=cmd.member_id,
        created_at=clock.now(),
    )
    uow.session.add(row)
    uow.session.flush()
    return share_dict(row)
