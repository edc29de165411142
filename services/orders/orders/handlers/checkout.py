"""Carts and checkout.

A checkout asks the catalog for every product at once (one batch RPC) while, in parallel, it
finds who brought the buyer (share code, else shop number, else the last landing visit within
the attribution window); then it writes one order per supplier in one transaction (``place``);
after the commit each order's stock is reserved (``stock.reserve``). A failed reservation
cancels every order of the checkout and releases what was held (``undo``): no half state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import eventlet
from sqlalchemy import select
from sqlalchemy.orm import Session

from orders import domain
from orders.handlers.common import Owed, UnitOfWork, lock_order, move, owed_of, record
from orders.models import CartItem, Checkout, Order, OrderItem
from orders.queries import checkout_replay, order_summary
from shared import clock
from shared.contracts.orders import CartIn, CheckoutIn
from shared.errors import NotFound, RuleViolation, ServiceUnavailable, rule
from shared.fingerprints import Fingerprinter
from shared.ids import new_id, unused_int_id

log = logging.getLogger(__name__)


# --- cart -----------------------------------------------------------------------------------
def put_cart(uow: UnitOfWork, buyer_id: int, cart: CartIn, now: datetime) -> None:
    """Replace the buyer's cart (the same product twice is one line)."""
    uow.session.query(CartItem).filter(CartItem.buyer_id == buyer_id).delete()
    for line in domain.merge_lines([i.model_dump() for i in cart.items]):
        uow.session.add(
            CartItem(
                buyer_id=buyer_id,
                product_id=line.product_id,
                quantity=line.quantity,
                updated_at=now,
            )
        )


# --- before the transaction: prices, stock and attribution ------------------------------------
@dataclass(frozen=True)
class Quote:
    """What the checkout will write: lines, the catalog's products, the attribution."""

    lines: list[domain.Line]
    products: dict[int, dict]
    attribution: domain.Attribution
    carried: frozenset[int] = frozenset()  # products the attributing shop carries


def quote(
    catalog: Any,
    shop: Any,
    share: Any,
    rules: domain.OrderRules,
    buyer_id: int,
    body: CheckoutIn,
    now: datetime,
) -> Quote:
    """Ask the catalog (one batch) and find the attribution in parallel; every product must
    exist and be available (``domain.check_products``)."""
    lines = domain.merge_lines([i.model_dump() for i in body.items])
    product_ids = [ln.product_id for ln in lines]
    found = eventlet.spawn(
        attributed_and_carried, shop, share, rules, buyer_id, body, now, product_ids
    )
    try:
        products_list = catalog.get_products(product_ids)
    except BaseException:
        found.kill()
        raise
    attributed, carried = found.wait()
    products = {int(p["id"]): p for p in products_list}
    domain.check_products(lines, products, rules)
    return Quote(lines, products, attributed, carried)


def attributed_and_carried(
    shop: Any,
    share: Any,
    rules: domain.OrderRules,
    buyer_id: int,
    body: CheckoutIn,
    now: datetime,
    product_ids: list[int],
) -> tuple[domain.Attribution, frozenset[int]]:
    """The attribution, then which of the products the attributing shop carries (has
    selected) right now — one batch call to shop; recorded per item as ``carried``."""
    who = attribution(shop, share, rules, buyer_id, body, now)
    if who.shop_id is None:
        return who, frozenset()
    return who, frozenset(int(p) for p in shop.carried_products(who.shop_id, product_ids))


def attribution(
    shop: Any, share: Any, rules: domain.OrderRules, buyer_id: int, body: CheckoutIn, now: datetime
) -> domain.Attribution:
    """Share code, else shop number, else the last landing visit within the window."""
    if body.share_code:
        try:
            # kind=None: the buyer's paste was already counted when it opened the share
            found = share.resolve(body.share_code, visitor_id=body.visitor_id, kind=None)
        except NotFound as exc:
            raise RuleViolation(
                "the share code is not valid",
                [rule("share_code", "no share matches this code", field="share_code")],
            ) from exc
        return domain.attribute(
            shop.get_shop(found["shop_id"]), buyer_id, found.get("share_id"), "share_code"
        )
    if body.shop_number:
        try:
            by_number = shop.get_shop_by_number(body.shop_number)
        except NotFound as exc:
            raise RuleViolation(
                "no shop has this number",
                [rule("shop_number", "no shop has this number", field="shop_number")],
            ) from exc
        return domain.attribute(by_number, buyer_id, None, "shop_number")
    if not body.visitor_id:
        return domain.Attribution()
    try:
        # the window is orders' rule: share is always told where it starts
        since = clock.iso(domain.attribution_since(now, rules))
        visit = share.last_visit(body.visitor_id, since)
        if not visit or not visit.get("shop_id"):
            return domain.Attribution()
        visited = shop.get_shop(visit["shop_id"])
    except Exception as exc:  # no visit, or share/shop cannot say: no attribution
        log.debug("no landing-visit attribution for member %s: %s", buyer_id, exc)
        return domain.Attribution()
    return domain.attribute(visited, buyer_id, visit.get("share_id"), "visit")


# --- the transaction ------------------------------------------------------------------------
@dataclass(frozen=True)
class Reservation:
    order_id: int
    reservation_id: str
    items: list[dict]


@dataclass(frozen=True)
class Placed:
    checkout_id: str
    reservations: list[Reservation]
    answer: dict


def place(
    uow: UnitOfWork,
    rules: domain.OrderRules,
    buyer_id: int,
    body: CheckoutIn,
    key: str | None,
    quoted: Quote,
    now: datetime,
    fingerprints: Fingerprinter | None = None,
) -> Placed:
    """One order per supplier, priced by the catalog, attributed, expiring when unpaid; the
    checkout key (unique per buyer) makes a retry replay instead of ordering twice. With
    ``fingerprints`` each order keeps the buyer's (delivery phone, address, visitor), which
    ``order_paid`` carries to payouts' fraud rules."""
    s = uow.session
    who = quoted.attribution
    fp = fingerprints
    checkout_id = new_id()
    s.add(Checkout(id=checkout_id, buyer_id=buyer_id, key=key, created_at=now))
    orders = []
    for group in domain.split_by_supplier(quoted.lines, quoted.products):
        order = Order(
            id=unused_int_id(s, Order),
            checkout_id=checkout_id,
            buyer_id=buyer_id,
            supplier_id=group["supplier_id"],
            status=domain.CREATED,
            total_fen=group["total_fen"],
            paid_fen=0,
            refunded_fen=0,
            shop_id=who.shop_id,
            share_id=who.share_id,
            shop_number=who.shop_number,
            keeper_member_id=who.keeper_member_id,
            self_referral=who.self_referral,
            attribution_source=who.source,
            address_name=body.address.name,
            address_phone=body.address.phone,
            address_line=body.address.line,
            buyer_phone_fp=fp.phone(body.address.phone) if fp else None,
            buyer_address_fp=fp.address(body.address.line) if fp else None,
            buyer_visitor_fp=fp.visitor(body.visitor_id) if fp else None,
            reservation_id="",
            stock_state="reserved",
            created_at=now,
            expires_at=domain.expires_at(now, rules),
            items=[
                OrderItem(
                    **item,
                    carried=None if who.shop_id is None else item["product_id"] in quoted.carried,
                )
                for item in group["items"]
            ],
        )
        s.add(order)
        orders.append(order)
    s.flush()
    note = f"no attribution: {who.dropped_reason}" if who.dropped_reason else None
    for order in orders:
        order.reservation_id = f"order-{order.id}"
        record(s, order, None, domain.CREATED, f"member:{buyer_id}", now, note)
    s.query(CartItem).filter(
        CartItem.buyer_id == buyer_id,
        CartItem.product_id.in_([ln.product_id for ln in quoted.lines]),
    ).delete(synchronize_session=False)
    return Placed(
        checkout_id,
        [
            Reservation(
                o.id,
                o.reservation_id,
                [{"product_id": i.product_id, "quantity": i.quantity} for i in o.items],
            )
            for o in orders
        ],
        {"checkout_id": checkout_id, "orders": [order_summary(o) for o in orders]},
    )


def replayed(session: Session, buyer_id: int, key: str) -> Placed | None:
    """The checkout placed earlier under ``key`` (a retry, or a redelivery after the instance
    that placed it died), with the reservations its unpaid orders need: made again under the
    same ids, they are answered by the catalog if the first attempt made them already."""
    answer = checkout_replay(session, buyer_id, key)
    if answer is None:
        return None
    orders = session.scalars(
        select(Order)
        .where(
            Order.checkout_id == answer["checkout_id"],
            Order.status == domain.CREATED,
            Order.stock_state == "reserved",
        )
        .order_by(Order.id)
    ).all()
    return Placed(
        answer["checkout_id"],
        [
            Reservation(
                o.id,
                o.reservation_id,
                [{"product_id": i.product_id, "quantity": i.quantity} for i in o.items],
            )
            for o in orders
        ],
        answer,
    )


# --- when the stock cannot be reserved --------------------------------------------------------
def undo(uow: UnitOfWork, placed: Placed, now: datetime) -> list[Owed]:
    """Every order of the checkout is cancelled, what was reserved is released (the failed
    one too: release is idempotent), and the checkout key is freed for a real retry."""
    owed: list[Owed] = []
    for r in placed.reservations:
        order = lock_order(uow.session, r.order_id)
        if order.status == domain.CREATED:
            move(uow, order, "cancel", "system", now, "stock reservation failed")
            order.stock_state = "to_release"
        owed += owed_of(order)
    uow.session.query(Checkout).filter(Checkout.id == placed.checkout_id).delete()
    return owed


def nothing_ordered(exc: Exception) -> ServiceUnavailable:
    """The answer when the catalog failed in a way that is not a domain error."""
    return ServiceUnavailable(
        "stock could not be reserved; nothing was ordered", details={"error": str(exc)[:200]}
    )
