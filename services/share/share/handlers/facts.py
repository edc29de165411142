"""Cached facts (product title, price, availability, shop name, keeper's reason) are dropped
as soon as catalog or shop announce a change, rather than waiting for their TTL.

Two handlers per event (service.py): ``forget`` in the pooled, reliable handler (one instance,
claimed in the inbox like every handler) and ``drop`` in the broadcast handler every instance
runs (``shared.broadcast``: in-process only), so no instance keeps a stale price."""

from __future__ import annotations

from typing import Any

from share.runtime import State


def forget(
    uow: Any,
    state: State,
    event: dict,
    handler: str,
    product_id: int | None = None,
    shop_id: int | None = None,
) -> int:
    """Drop the facts of every share of ``product_id`` and/or ``shop_id``; how many. Naturally
    idempotent, claimed anyway like every handler."""
    uow.claim(event, handler)
    return state.forget_facts(product_id=product_id, shop_id=shop_id)


def drop(state: State, product_id: int | None = None, shop_id: int | None = None) -> int:
    """This process' part of an invalidation (every instance runs it): no database, no claim;
    dropping twice drops nothing more."""
    return state.forget_facts(product_id=product_id, shop_id=shop_id)
