"""Carts and checkout.

A checkout first finds who brought the buyer (share code, else shop number, else the last
landing visit within the attribution window: ``quote``); then, in one transaction, it reads
its products from orders' view of the catalog and takes their stock from orders' pool in one
statement, and writes one order per supplier in a second, which carries the COMMIT
(``place``). A product the view has never seen is asked of the catalog once (``Unknown``); a
pool that cannot cover a line asks the catalog for a grant (``stock.Short``). Orders placed
before the pool existed reserve their stock at the catalog after the commit
(``stock.reserve``); a failed reservation cancels every order of the checkout and releases
what was held (``undo``): no half state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.orm import Session

from orders import domain
from orders.handlers import stock
from orders.handlers.common import Owed, UnitOfWork, lock_order, move, owed_of
from orders.models import CartItem, Checkout, Order, OrderHistory, OrderItem
from orders.queries import checkout_replay
from shared import clock
from shared.contracts.orders import CartIn, CheckoutIn
from shared.db import write_rows
from shared.errors import NotFound, RuleViolation, ServiceUnavailable, rule
from shared.fingerprints import Fingerprinter
from shared.ids import new_id, random_int_id

log = logging.getLogger(__name__)

CHECKOUTS = cast(Table, Checkout.__table__)
ORDERS = cast(Table, Order.__table__)
ORDER_ITEMS = cast(Table, OrderItem.__table__)
HISTORY = cast(Table, OrderHistory.__table__)
CART = cast(Table, CartItem.__table__)


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


# --- before the transaction: the lines and the attribution ------------------------------------
@dataclass(frozen=True)
class Quote:
    """What the checkout will write, as far as it is known before its transaction: the lines
    and the attribution (the products and their stock are read and taken in it, ``place``)."""

    lines: list[domain.Line]
    attribution: domain.Attribution
    carried: frozenset[int] = frozenset()  # products the attributing shop carries


class Unknown(Exception):
    """Products orders' view of the catalog has never seen (orders started after they were
    listed, or an event was lost): the transaction rolls back, the caller asks the catalog
    once (``products.refresh``) and places again with ``asked=True``."""

    def __init__(self, product_ids: list[int]) -> None:
        super().__init__(product_ids)
        self.product_ids = product_ids


def quote(
    shop: Any,
    share: Any,
    rules: domain.OrderRules,
    buyer_id: int,
    body: CheckoutIn,
    now: datetime,
) -> Quote:
    """The lines (merged per product, their count within the rules before any database work)
    and who brought the buyer (share code, shop number or landing visit: RPCs to share and
    shop only when the body names one)."""
    lines = domain.merge_lines([i.model_dump() for i in body.items])
    domain.check_lines(lines, rules)
    if body.share_code or body.shop_number or body.visitor_id:
        product_ids = [ln.product_id for ln in lines]
        attributed, carried = attributed_and_carried(
            shop, share, rules, buyer_id, body, now, product_ids
        )
        return Quote(lines, attributed, carried)
    return Quote(lines, domain.Attribution())


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
    reservations: list[Reservation]  # still to make at the catalog (orders placed before the pool)
    answer: dict

    @property
    def order_ids(self) -> list[int]:
        return [int(o["id"]) for o in self.answer["orders"]]


def place(
    uow: UnitOfWork,
    rules: domain.OrderRules,
    buyer_id: int,
    body: CheckoutIn,
    key: str | None,
    quoted: Quote,
    now: datetime,
    fingerprints: Fingerprinter | None = None,
    asked: bool = False,
) -> Placed:
    """One order per supplier, priced at checkout from orders' view of the catalog (a later
    price change never touches it), attributed, expiring when unpaid; the checkout key (unique
    per buyer) makes a retry replay instead of ordering twice. With ``fingerprints`` each
    order keeps the buyer's (delivery phone, address, visitor), which ``order_paid`` carries
    to payouts' fraud rules.

    Hot path: the products are read and their stock taken from the pool in the transaction's
    first statement (``stock.quote_and_take``); a product the view does not know raises
    ``Unknown`` (unless the catalog was ``asked`` already: then it does not exist), one that
    cannot be sold the rule's 4xx, a line the pool cannot cover ``stock.Short`` — each rolls
    back. Then every row (checkouts, orders, order_items, order_history) in ONE statement
    built once per shape (``shared.db.write_rows``), ids drawn up front (a colliding random
    id is a unique violation, retried by the caller), the reservation id written with the
    order; the cart's DELETE only when it had lines; the last statement carries the COMMIT
    (``UnitOfWork.commit_with_next``): two round trips on PostgreSQL."""
    s = uow.session

    def check(found: dict[int, dict]) -> None:
        unknown = [ln.product_id for ln in quoted.lines if ln.product_id not in found]
        if unknown and not asked:
            raise Unknown(unknown)
        domain.check_products(quoted.lines, found, rules)

    products, has_cart = stock.quote_and_take(
        s, buyer_id, [(ln.product_id, ln.quantity) for ln in quoted.lines], now, check
    )
    who = quoted.attribution
    fp = fingerprints
    checkout_id = new_id()
    expires = domain.expires_at(now, rules)
    orders: list[dict] = []
    lines: list[dict] = []
    for group in domain.split_by_supplier(quoted.lines, products):
        order_id = random_int_id()
        orders.append(
            dict(
                id=order_id,
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
                reservation_id=reservation_id_of(order_id),
                stock_state="reserved",
                stock_from="pool",
                created_at=now,
                expires_at=expires,
            )
        )
        lines += [
            {
                **item,
                "order_id": order_id,
                "carried": None if who.shop_id is None else item["product_id"] in quoted.carried,
            }
            for item in group["items"]
        ]
    note = f"no attribution: {who.dropped_reason}" if who.dropped_reason else None
    by = f"member:{buyer_id}"
    history = [
        dict(
            order_id=o["id"],
            from_status=None,
            to_status=domain.CREATED,
            actor=by,
            at=now,
            note=note,
        )
        for o in orders
    ]
    if not has_cart:
        uow.commit_with_next()  # the rows' statement is the last: the COMMIT goes with it
    write_rows(  # one round trip, a statement kept per shape: checkout, orders, items, history
        s,
        (insert(CHECKOUTS), [dict(id=checkout_id, buyer_id=buyer_id, key=key, created_at=now)]),
        (insert(ORDERS), orders),
        (insert(ORDER_ITEMS), lines),
        (insert(HISTORY), history),
    )
    if has_cart:
        uow.commit_with_next()
        s.execute(
            delete(CART).where(
                CART.c.buyer_id == buyer_id,
                CART.c.product_id.in_([ln.product_id for ln in quoted.lines]),
            )
        )
    summaries = []
    for o in orders:
        mine = [ln for ln in lines if ln["order_id"] == o["id"]]
        summaries.append(
            {
                "id": o["id"],
                "status": o["status"],
                "supplier_id": o["supplier_id"],
                "total_fen": o["total_fen"],
                "shop_id": o["shop_id"],
                "share_id": o["share_id"],
                "self_referral": o["self_referral"],
                "items": [{k: ln[k] for k in SUMMARY_ITEM_KEYS} for ln in mine],
                "expires_at": clock.iso(expires),
            }
        )
    # the stock is taken: nothing is left to reserve at the catalog
    return Placed(checkout_id, [], {"checkout_id": checkout_id, "orders": summaries})


SUMMARY_ITEM_KEYS = (
    "product_id",
    "title",
    "quantity",
    "unit_price_fen",
    "amount_fen",
    "commission_bps",
    "carried",
)


def reservation_id_of(order_id: int) -> str:
    """The order's reservation at the catalog (one per order, idempotent there)."""
    return f"order-{order_id}"


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
            Order.stock_from == "catalog",  # a pool order took its stock with its transaction
        )
        .order_by(Order.id)
    ).all()
    return Placed(
        answer["checkout_id"],
        [
            Reservation(
                o.id,
                o.reservation_id,
                [
                    {
                        "product_id": i.product_id,
                        "quantity": i.quantity,
                        "unit_price_fen": i.unit_price_fen,
                    }
                    for i in o.items
                ],
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
            stock.let_go(uow, order, now)
        owed += owed_of(order)
    uow.session.query(Checkout).filter(Checkout.id == placed.checkout_id).delete()
    return owed


def nothing_ordered(exc: Exception) -> ServiceUnavailable:
    """The answer when the catalog failed in a way that is not a domain error."""
    return ServiceUnavailable(
        "stock could not be reserved; nothing was ordered", details={"error": str(exc)[:200]}
    )
