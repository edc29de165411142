"""The orders handlers through a fake unit of work (no database server, no broker): rows
written and events emitted for checkout, payment, the order's life, refunds and the timers.
Other services are small fakes with the same RPC methods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from orders import domain
from orders.handlers import checkout, lifecycle, payment, refunds, stock
from orders.handlers import products as products_view
from orders.handlers.common import Owed
from orders.models import Base, CartItem, Checkout, Order, OrderHistory, Payment, Refund, StockPool
from orders.payments import SandboxProvider
from shared.contracts.events import StockCommitRefused
from shared.contracts.orders import (
    CartIn,
    CheckoutIn,
    PaymentCallback,
    RefundIn,
    ShipIn,
    Viewer,
)
from shared.errors import Conflict, NotFound, RuleViolation
from shared.testing import FakeUnitOfWork

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
RULES = domain.OrderRules()
BUYER, KEEPER = 41, 40
BUYER_V = Viewer(role="member", id=str(BUYER))
ADDRESS = {"name": "张三", "phone": "13812345678", "line": "上海市黄浦区某路1号"}


class FakeCatalog:
    def __init__(self, products: list[dict]):
        self.products = {p["id"]: p for p in products}
        self.calls: list[tuple] = []

    def get_products(self, ids):
        self.calls.append(("get_products", list(ids)))
        return [self.products[i] for i in ids if i in self.products]

    def reserve_stock(self, reservation_id, items, hold_seconds=None):
        self.calls.append(("reserve_stock", reservation_id, items, hold_seconds))
        return {"reservation_id": reservation_id, "status": "reserved"}

    def commit_stock(self, reservation_id):
        self.calls.append(("commit_stock", reservation_id))
        return {"status": "committed"}

    def release_stock(self, reservation_id, paid=False, items=None):
        self.calls.append(
            (
                "release_stock",
                reservation_id,
                *([True] if paid else []),
                *([items] if items else []),
            )
        )
        return {"status": "released"}

    def get_supplier_contact(self, supplier_id):
        return {"supplier_id": supplier_id, "name": f"S{supplier_id}", "phone": "021-7777"}


class FakeShop:
    SHOP = {"id": 5, "member_id": KEEPER, "shop_number": "123456", "status": "active"}

    def get_shop(self, shop_id):
        return dict(self.SHOP)

    def get_shop_by_number(self, number):
        return dict(self.SHOP)

    def carried_products(self, shop_id, product_ids):
        return [p for p in product_ids if p in self.CARRIED] if self.CARRIED else product_ids

    CARRIED: set[int] = set()  # empty: the shop carries everything asked about

    def get_keeper_contact(self, shop_id):
        return {"shop_id": shop_id, "shop_number": "123456", "nickname": "k", "phone": "139"}


class FakeShare:
    def __init__(self):
        self.calls: list[tuple] = []

    def resolve(self, text, visitor_id=None, kind="resolve"):
        self.calls.append(("resolve", text))
        return {"share_id": "share-abc", "shop_id": 5}

    def last_visit(self, visitor_id, since):
        self.calls.append(("last_visit", visitor_id, since))
        return {"share_id": "share-v", "shop_id": 5}


def product(pid, supplier, price=1990, stock=10):
    return {
        "id": pid,
        "supplier_id": supplier,
        "title": f"Product {pid}",
        "price_fen": price,
        "commission_bps": 1000,
        "stock": stock,
        "available": True,
    }


CATALOG = [product(101, 7, price=1990), product(202, 8, price=5000)]


@pytest.fixture
def uow():
    return FakeUnitOfWork(Base.metadata)


POOL_UNITS = 100  # what the catalog granted of every product before each checkout


def pool(uow) -> dict[int, int]:
    return {r.product_id: r.units for r in uow.session.scalars(select(StockPool))}


def place(uow, items=((101, 2),), catalog=None, buyer=BUYER, **extra):
    catalog = catalog or FakeCatalog(CATALOG)
    if not pool(uow):  # granted by the catalog at its prices
        products = list(catalog.products.values())
        stock.ask(uow.session, "seed", {p["id"]: POOL_UNITS for p in products}, NOW)
        answer = {
            "items": [
                {"product_id": p["id"], "quantity": POOL_UNITS, "price_fen": p["price_fen"]}
                for p in products
            ]
        }
        stock.apply(uow.session, "seed", answer, NOW)
    body = CheckoutIn.model_validate(
        {
            "items": [{"product_id": p, "quantity": q} for p, q in items],
            "address": ADDRESS,
            **extra,
        }
    )
    quoted = checkout.quote(FakeShop(), FakeShare(), RULES, buyer, body, NOW)
    key = extra.get("checkout_key")
    try:
        return checkout.place(uow, RULES, buyer, body, key, quoted, NOW)
    except checkout.Unknown as unknown:  # as the service does: ask the catalog, place again
        products_view.refresh(uow, catalog.get_products(unknown.product_ids))
        return checkout.place(uow, RULES, buyer, body, key, quoted, NOW, asked=True)


def paid_order(uow, items=((101, 2),)) -> Order:
    placed = place(uow, items)
    order = uow.session.get(Order, placed.order_ids[0])
    cb = PaymentCallback(payment_id="pay-1", order_id=order.id, amount_fen=order.total_fen)
    payment.apply_callback(uow, cb, cb.model_dump(), NOW + timedelta(minutes=5), fast=True)
    uow.session.expire_all()  # paid by a Core UPDATE: reload what the session holds
    return order


def shipped_order(uow, at: datetime) -> Order:
    order = paid_order(uow)
    lifecycle.ship(
        uow, order.id, Viewer(role="supplier", id="7"), ShipIn(carrier="SF", tracking_no="1"), at
    )
    return order


def types(uow) -> list[str]:
    return [t for t, _ in uow.events]


# --- checkout -------------------------------------------------------------------------------
def test_checkout_writes_one_order_per_supplier_attributed_to_the_share(uow):
    catalog = FakeCatalog(CATALOG)
    uow.session.add(CartItem(buyer_id=BUYER, product_id=101, quantity=2, updated_at=NOW))
    uow.session.flush()
    placed = place(uow, [(101, 2), (202, 1)], catalog=catalog, share_code="复制 XP9K2M 打开")

    orders = uow.session.scalars(select(Order).order_by(Order.supplier_id)).all()
    assert [(o.supplier_id, o.total_fen) for o in orders] == [(7, 3980), (8, 5000)]
    for o in orders:
        assert (o.shop_id, o.share_id, o.keeper_member_id) == (5, "share-abc", KEEPER)
        assert o.status == "created" and o.self_referral is False
        assert o.reservation_id == f"order-{o.id}"
        assert o.expires_at.replace(tzinfo=UTC) == NOW + timedelta(minutes=30)
    # one batch for the products the read model did not know yet, remembered there
    assert [c[0] for c in catalog.calls] == ["get_products"]
    assert uow.session.scalars(select(CartItem)).all() == []  # ordered items leave the cart
    assert uow.session.scalar(select(Checkout.id)) == placed.checkout_id
    history = uow.session.scalars(select(OrderHistory)).all()
    assert [(h.from_status, h.to_status) for h in history] == [(None, "created")] * 2
    assert uow.events == []  # nothing is announced before payment
    assert not uow.committed

    # the stock came from the pool in the same transaction: no reservation left to make
    assert placed.reservations == [] and {o.stock_from for o in orders} == {"pool"}
    assert {o.stock_state for o in orders} == {"reserved"}
    assert pool(uow) == {101: POOL_UNITS - 2, 202: POOL_UNITS - 1}
    again = place(uow, [(101, 1), (202, 1)], catalog=catalog)
    assert [c[0] for c in catalog.calls] == ["get_products"]  # the read model remembered
    prices = [o["items"][0]["unit_price_fen"] for o in again.answer["orders"]]
    assert sorted(prices) == [1990, 5000]
    assert pool(uow) == {101: POOL_UNITS - 3, 202: POOL_UNITS - 2}


def test_a_checkout_the_pool_cannot_cover_takes_nothing(uow):
    place(uow, [(101, 1)])  # the pool is stocked with POOL_UNITS of each
    stock.reclaim(uow.session, "r0", [202], [], NOW)  # 202's pool is empty now
    with pytest.raises(stock.Short) as short:
        place(uow, [(101, 2), (202, 1)])
    # only the line it cannot cover is named (the grant asks for it); the caller's
    # transaction rolls back whatever the other lines took (tested on a real database)
    assert short.value.lines == {202: 1}


def test_a_grant_is_applied_once_and_a_revoked_one_never(uow):
    stock.ask(uow.session, "g1", {101: 20, 202: 20}, NOW)
    assert pool(uow) == {101: 0, 202: 0}  # empty rows, for the lock order
    assert stock.unanswered(uow.session, NOW + timedelta(seconds=1)) == {"g1": {101: 20, 202: 20}}
    answer = {
        "grant_id": "g1",
        "items": [{"product_id": 101, "quantity": 20}, {"product_id": 202, "quantity": 3}],
    }
    assert stock.apply(uow.session, "g1", answer, NOW) == {101: 20, 202: 3}
    assert stock.apply(uow.session, "g1", answer, NOW) == {}  # a repeat adds nothing
    assert pool(uow) == {101: 20, 202: 3}
    assert stock.unanswered(uow.session, NOW + timedelta(seconds=1)) == {}

    stock.ask(uow.session, "g2", {101: 20, 202: 20}, NOW)
    stock.ask(uow.session, "g3", {202: 20}, NOW)
    taken = stock.reclaim(uow.session, "r1", [101], ["g1", "g2", "ghost"], NOW)
    # g1 was applied (its units are in the pool, given back now); g2 was not: revoked as a
    # whole, its line of 202 too (the catalog gives back every line of a revoked grant)
    assert taken == {
        "reclaim_id": "r1",
        "items": [{"product_id": 101, "units": 20}],
        "revoked": ["g2", "ghost"],
    }
    assert pool(uow) == {101: 0, 202: 3}
    late = {
        "grant_id": "g2",
        "items": [{"product_id": 101, "quantity": 20}, {"product_id": 202, "quantity": 20}],
    }
    assert stock.apply(uow.session, "g2", late, NOW) == {}  # revoked: the late answer is dropped
    assert pool(uow) == {101: 0, 202: 3}
    assert stock.reclaim(uow.session, "r1", [101], [], NOW) == taken  # once per reclaim id
    assert stock.unanswered(uow.session, NOW + timedelta(seconds=1)) == {"g3": {202: 20}}


def test_checkout_through_a_landing_visit_asks_share_with_orders_window(uow):
    share = FakeShare()
    body = CheckoutIn.model_validate(
        {"items": [{"product_id": 101, "quantity": 1}], "address": ADDRESS, "visitor_id": "v1"}
    )
    rules = domain.OrderRules(attribution_window_days=3)
    found = checkout.attribution(FakeShop(), share, rules, BUYER, body, NOW)
    assert share.calls == [("last_visit", "v1", "2029-12-29T12:00:00Z")]
    assert (found.shop_id, found.share_id, found.source) == (5, "share-v", "visit")


def test_keeper_buying_in_own_shop_is_attributed_but_flagged(uow):
    place(uow, buyer=KEEPER, shop_number="123456")
    order = uow.session.scalars(select(Order)).one()
    assert order.shop_id == 5 and order.self_referral is True


def test_a_failed_reservation_is_undone_every_order_cancelled_and_released(uow):
    placed = place(uow, [(101, 1), (202, 1)], checkout_key="k1")
    legacy = [
        checkout.Reservation(o.id, o.reservation_id, [])
        for o in uow.session.scalars(select(Order).order_by(Order.id))
    ]
    for o in uow.session.scalars(select(Order)):  # one placed before the pool, one after
        o.stock_from = "catalog" if o.total_fen == 1990 else "pool"
    owed = checkout.undo(uow, checkout.Placed(placed.checkout_id, legacy, placed.answer), NOW)
    orders = uow.session.scalars(select(Order)).all()
    assert {o.status for o in orders} == {"cancelled"}
    # the catalog's reservation is owed its release; the pool order gave its units back
    assert [o.stock_state for o in owed] == ["to_release"]
    assert {o.stock_from: o.stock_state for o in orders} == {
        "catalog": "to_release",
        "pool": "released",
    }
    assert pool(uow)[202] == POOL_UNITS
    assert uow.session.scalars(select(Checkout)).all() == []  # the key is free again
    assert types(uow) == ["order_cancelled", "order_cancelled"]


def test_cart_keeps_one_line_per_product(uow):
    cart = CartIn.model_validate(
        {"items": [{"product_id": 1, "quantity": 1}, {"product_id": 1, "quantity": 2}]}
    )
    checkout.put_cart(uow, BUYER, cart, NOW)
    assert [(c.product_id, c.quantity) for c in uow.session.scalars(select(CartItem))] == [(1, 3)]


# --- payment --------------------------------------------------------------------------------
def test_payment_callback_pays_once_and_emits_order_paid(uow):
    order = paid_order(uow)
    # no stock call owed: the catalog commits the reservation from order_paid
    assert order.status == "paid" and order.paid_fen == 3980 and order.stock_state == "committed"
    assert types(uow) == ["order_paid"]
    data = uow.events[0][1]
    assert (data["order_id"], data["paid_fen"], data["shop_id"]) == (order.id, 3980, None)
    assert data["lines"][0]["commission_bps"] == 1000
    assert data["reservation_id"] == order.reservation_id

    cb = PaymentCallback(payment_id="pay-1", order_id=order.id, amount_fen=order.total_fen)
    again = payment.apply_callback(uow, cb, cb.model_dump(), NOW + timedelta(minutes=6))
    assert again.answer["duplicate"] is True and again.owed == []
    assert types(uow) == ["order_paid"]


def test_a_fast_payment_records_its_key_with_the_answer_in_the_same_statement(uow):
    """The sandbox pay's common case claims no key first: ``_paid`` writes the request's key
    with its answer among its rows, so a repeat of the request (the full path, its key
    claimed first) answers what was recorded without running again."""
    oid = place(uow).order_ids[0]
    uow.idempotency_key = "pay-key-1"
    provider, at = SandboxProvider("s"), NOW + timedelta(minutes=5)
    applied = payment.pay_sandbox(uow, provider, oid, BUYER_V, at)
    assert applied.answer == {"order_id": oid, "status": "paid"} and types(uow) == ["order_paid"]

    def ran_again():
        raise AssertionError("a repeat of a recorded request must not run")

    assert uow.once(ran_again) == payment.outcome_of(applied.answer)
    with pytest.raises(payment.NotFast):  # paid now: no longer the common case
        payment.pay_sandbox(uow, provider, oid, BUYER_V, at)
    with pytest.raises(payment.NotFast):  # nor is another buyer's payment
        payment.pay_sandbox(uow, provider, oid, Viewer(role="member", id="99"), at)
    assert types(uow) == ["order_paid"]


def test_a_payment_after_the_unpaid_expiry_is_refused_and_recorded_refund_due(uow):
    placed = place(uow)
    oid = placed.order_ids[0]
    cb = PaymentCallback(payment_id="late", order_id=oid, amount_fen=3980)
    late = payment.apply_callback(uow, cb, cb.model_dump(), NOW + timedelta(minutes=30))
    assert isinstance(late.refused, Conflict)
    assert late.refused.details["payment"] == "refund_due"
    assert uow.session.get(Order, oid).status == "expired"
    assert uow.session.get(Payment, ("late", "sandbox")).outcome == "refund_due"
    assert late.owed == []  # its units went back to the pool when it expired
    assert uow.session.get(Order, oid).stock_state == "released"
    assert types(uow) == ["order_expired"]
    assert payment.late_payments(uow.session) == [("late", 3980)]
    assert payment.refund_late(SandboxProvider("s"), "late", 3980) is True
    payment.mark_refunded(uow, "late")
    assert payment.late_payments(uow.session) == []


# --- ship, receive, complete ----------------------------------------------------------------
def test_ship_then_confirm_then_complete_after_the_after_sales_window(uow):
    order = shipped_order(uow, NOW + timedelta(hours=1))
    assert order.status == "shipped"
    with pytest.raises(NotFound, match=f"order {order.id} not found"):  # not theirs
        lifecycle.confirm(uow, RULES, order.id, Viewer(role="member", id="99"), NOW)
    received_at = NOW + timedelta(days=2)
    done = lifecycle.confirm(uow, RULES, order.id, BUYER_V, received_at)
    assert done.answer == {"id": order.id, "status": "received"}
    assert done.owed == []  # nothing owed: the catalog committed from order_paid
    assert types(uow) == ["order_paid", "order_shipped", "order_received"]
    received = uow.events[-1][1]
    # orders owns after_sales_days: payouts settles from this instant
    assert received["after_sales_until"] == "2030-01-18T12:00:00Z"

    almost = received_at + timedelta(days=15) - timedelta(seconds=1)
    assert lifecycle.due(uow.session, RULES, almost).complete == []
    closes = received_at + timedelta(days=15)
    assert lifecycle.due(uow.session, RULES, closes).complete == [order.id]
    assert lifecycle.complete(uow, order.id, closes) is True
    assert order.status == "completed" and types(uow)[-1] == "order_completed"
    with pytest.raises(Conflict):  # the window closed: no more refunds
        refunds.request_refund(uow, order.id, BUYER_V, RefundIn(amount_fen=1, reason="x"), closes)


def test_auto_confirm_waits_the_full_ten_days_after_shipping(uow):
    shipped_at = NOW
    order = shipped_order(uow, shipped_at)
    almost = shipped_at + timedelta(days=9, hours=23)
    assert lifecycle.due(uow.session, RULES, almost).receive == []
    assert order.status == "shipped"

    ten_days = shipped_at + timedelta(days=10)
    assert lifecycle.due(uow.session, RULES, ten_days).receive == [order.id]
    assert lifecycle.receive_automatically(uow, RULES, order.id, ten_days) is True
    assert order.status == "received"
    assert uow.events[-1][0] == "order_received"
    assert uow.events[-1][1]["note"] == "auto-confirmed"
    assert lifecycle.receive_automatically(uow, RULES, order.id, ten_days) is False  # once


def test_unpaid_order_expires_after_thirty_minutes_and_releases_its_stock(uow):
    oid = place(uow).order_ids[0]
    assert lifecycle.due(uow.session, RULES, NOW + timedelta(minutes=29)).expire == []
    at = NOW + timedelta(minutes=30)
    assert lifecycle.due(uow.session, RULES, at).expire == [oid]
    done = lifecycle.expire_unpaid(uow, oid, at)
    # its units are back in the pool in the same transaction: nothing owed to the catalog
    assert done is not None and done.owed == [] and pool(uow)[101] == POOL_UNITS
    assert uow.session.get(Order, oid).stock_state == "released"
    assert types(uow) == ["order_expired"]
    assert lifecycle.expire_unpaid(uow, oid, at) is None


def test_buyer_cancels_an_unpaid_order_but_not_a_paid_one(uow):
    oid = place(uow).order_ids[0]
    done = lifecycle.cancel(uow, oid, BUYER_V, NOW)
    assert done.answer["status"] == "cancelled" and done.owed == []
    assert pool(uow)[101] == POOL_UNITS
    paid = paid_order(uow)
    with pytest.raises(Conflict):
        lifecycle.cancel(uow, paid.id, BUYER_V, NOW)


# --- refunds --------------------------------------------------------------------------------
def test_full_refund_before_shipping_refunds_the_order_and_returns_the_stock(uow):
    order = paid_order(uow)
    asked = refunds.request_refund(
        uow, order.id, BUYER_V, RefundIn(amount_fen=3980, reason="changed my mind"), NOW
    )
    assert asked["status"] == "requested"
    with pytest.raises(NotFound, match=f"refund {asked['id']} not found"):  # another supplier
        refunds.decide_refund(
            uow, SandboxProvider("s"), asked["id"], Viewer(role="supplier", id="8"), True, NOW
        )
    done = refunds.decide_refund(
        uow, SandboxProvider("s"), asked["id"], Viewer(role="supplier", id="7"), True, NOW
    )
    assert done.answer["status"] == "approved"
    assert done.answer["provider_refund_id"] == f"sbx-refund-refund-{asked['id']}"
    assert order.status == "refunded" and order.refunded_fen == 3980
    # paid stock goes back whether or not the catalog consumed order_paid yet
    assert done.owed == [Owed(order.id, "to_return", order.reservation_id, ((101, 2),))]
    assert types(uow) == ["order_paid", "refund_requested", "order_refunded", "refund_decided"]
    requested = uow.events[1][1]
    assert (requested["refund_id"], requested["buyer_id"]) == (asked["id"], BUYER)
    assert uow.events[-1][1]["decision"] == "approved"
    event = uow.events[-2][1]
    assert sum(i["amount_fen"] for i in event["items"]) == 3980  # spread over the items
    assert (event["amount_fen"], event["refunded_total_fen"], event["shipped"]) == (
        3980,
        3980,
        False,
    )
    with pytest.raises(Conflict):  # decided once
        refunds.decide_refund(
            uow, SandboxProvider("s"), asked["id"], Viewer(role="supplier", id="7"), False, NOW
        )


def test_a_pending_refund_keeps_the_after_sales_window_open(uow):
    order = shipped_order(uow, NOW)
    lifecycle.confirm(uow, RULES, order.id, BUYER_V, NOW)
    refunds.request_refund(uow, order.id, BUYER_V, RefundIn(amount_fen=100, reason="x"), NOW)
    later = NOW + timedelta(days=16)
    assert lifecycle.complete(uow, order.id, later) is False
    assert order.status == "received"
    refund_id = uow.session.scalars(select(Refund.id)).one()
    refunds.decide_refund(
        uow, SandboxProvider("s"), refund_id, Viewer(role="supplier", id="7"), False, later
    )
    assert lifecycle.complete(uow, order.id, later) is True


# --- stock owed to the catalog --------------------------------------------------------------
def test_a_payment_owes_no_stock_call(uow):
    paid_order(uow)
    assert stock.owed(uow.session) == []


def test_owed_stock_is_called_and_recorded_once(uow):
    order = paid_order(uow)
    order.stock_state = "to_commit"  # paid before the catalog committed from order_paid
    uow.session.flush()
    catalog = FakeCatalog(CATALOG)
    [row] = stock.owed(uow.session)
    assert row == Owed(order.id, "to_commit", order.reservation_id, ((101, 2),))
    done = stock.call_catalog(catalog, row)
    assert done == "committed" and catalog.calls == [("commit_stock", order.reservation_id)]
    stock.record(uow, row, done)
    assert stock.owed(uow.session) == []
    returned = Owed(order.id, "to_return", order.reservation_id)
    assert stock.call_catalog(catalog, returned) == "released"
    assert catalog.calls[-1] == ("release_stock", order.reservation_id, True)
    # a pool order's paid release names its lines (the catalog may hold no reservation yet)
    pooled = Owed(order.id, "to_return", order.reservation_id, ((101, 2),))
    assert stock.call_catalog(catalog, pooled) == "released"
    lines = [{"product_id": 101, "quantity": 2}]
    assert catalog.calls[-1] == ("release_stock", order.reservation_id, True, lines)


def test_a_paid_order_whose_stock_the_catalog_refused_is_flagged_commit_refused(uow):
    order = paid_order(uow)
    assert order.stock_state == "committed"  # by the catalog, from order_paid

    def refusal(order_id, reservation_id):
        return StockCommitRefused(
            order_id=order_id,
            supplier_id=order.supplier_id,
            reservation_id=reservation_id,
            reason="reservation_not_found",
            at="2026-03-01T09:00:00Z",
        )

    assert stock.refused(uow, refusal(order.id, "another-reservation")) is False
    assert stock.refused(uow, refusal(order.id, order.reservation_id)) is True
    uow.session.refresh(order)
    assert order.stock_state == "commit_refused"
    assert stock.refused(uow, refusal(order.id, order.reservation_id)) is False  # once
    assert stock.owed(uow.session) == []  # and nothing is retried


# --- refunds name their items ---------------------------------------------------------------
TWO_ITEMS = [product(101, 7, price=2000), product(303, 7, price=5000)]


def two_item_order(uow) -> Order:
    placed = place(uow, [(101, 1), (303, 1)], catalog=FakeCatalog(TWO_ITEMS), shop_number="123456")
    order = uow.session.get(Order, placed.order_ids[0])
    cb = PaymentCallback(payment_id="pay-2", order_id=order.id, amount_fen=order.total_fen)
    payment.apply_callback(uow, cb, cb.model_dump(), NOW + timedelta(minutes=5), fast=True)
    uow.session.expire_all()  # paid by a Core UPDATE: reload what the session holds
    return order


def test_a_refund_names_its_items_and_the_decision_carries_them(uow):
    order = two_item_order(uow)
    body = RefundIn(
        amount_fen=5000, reason="broken", items=[{"product_id": 303, "amount_fen": 5000}]
    )
    asked = refunds.request_refund(uow, order.id, BUYER_V, body, NOW)
    assert asked["items"] == [{"product_id": 303, "amount_fen": 5000}]
    requested = uow.events[-1]
    assert requested[0] == "refund_requested"
    assert requested[1]["items"] == [{"product_id": 303, "amount_fen": 5000}]
    refunds.decide_refund(
        uow, SandboxProvider("s"), asked["id"], Viewer(role="supplier", id="7"), True, NOW
    )
    refunded = next(d for t, d in uow.events if t == "order_refunded")
    assert refunded["items"] == [{"product_id": 303, "amount_fen": 5000}]
    # item 303 is fully refunded now: naming it again is refused, the rest spreads over 101
    with pytest.raises(RuleViolation) as exc:
        refunds.request_refund(
            uow,
            order.id,
            BUYER_V,
            RefundIn(amount_fen=1, reason="again", items=[{"product_id": 303, "amount_fen": 1}]),
            NOW,
        )
    assert exc.value.details[0]["rule"] == "item_refund_limit"
    spread = refunds.request_refund(
        uow, order.id, BUYER_V, RefundIn(amount_fen=700, reason="x"), NOW
    )
    assert spread["items"] == [{"product_id": 101, "amount_fen": 700}]


def test_refund_items_must_be_in_the_order_and_add_up(uow):
    order = two_item_order(uow)
    bad = RefundIn(
        amount_fen=3000,
        reason="x",
        items=[{"product_id": 999, "amount_fen": 1000}, {"product_id": 101, "amount_fen": 2500}],
    )
    with pytest.raises(RuleViolation) as exc:
        refunds.request_refund(uow, order.id, BUYER_V, bad, NOW)
    assert [d["rule"] for d in exc.value.details] == [
        "item_in_order",
        "item_refund_limit",
        "items_sum",
    ]
    assert uow.session.execute(select(Refund)).first() is None


def test_a_rejected_refund_emits_its_decision(uow):
    order = two_item_order(uow)
    asked = refunds.request_refund(
        uow, order.id, BUYER_V, RefundIn(amount_fen=7000, reason="x"), NOW
    )
    assert asked["items"] == [
        {"product_id": 101, "amount_fen": 2000},
        {"product_id": 303, "amount_fen": 5000},
    ]
    refunds.decide_refund(
        uow, SandboxProvider("s"), asked["id"], Viewer(role="supplier", id="7"), False, NOW
    )
    assert uow.events[-1][0] == "refund_decided"
    assert uow.events[-1][1]["decision"] == "rejected"
    assert "order_refunded" not in types(uow)


def test_checkout_records_which_items_the_shop_carries(uow):
    FakeShop.CARRIED = {101}
    try:
        order = two_item_order(uow)
    finally:
        FakeShop.CARRIED = set()
    assert {i.product_id: i.carried for i in order.items} == {101: True, 303: False}
    paid = next(d for t, d in uow.events if t == "order_paid")
    assert {ln["product_id"]: ln["carried"] for ln in paid["lines"]} == {101: True, 303: False}
    unattributed = uow.session.get(Order, place(uow, [(101, 1)]).order_ids[0])
    assert [i.carried for i in unattributed.items] == [None]
