"""The catalog's command handlers through a fake unit of work (no broker, no database server):
what each command changes and which events it emits (cosmicpython tests/unit/test_handlers.py)."""

from datetime import UTC, datetime, timedelta

import pytest

from catalog import queries
from catalog.domain import CatalogRules
from catalog.handlers import products, stock, suppliers
from catalog.models import Base, Product
from shared import clock
from shared.contracts.events import ProductSnapshot, SupplierChanged
from shared.errors import Conflict, RuleViolation
from shared.testing import FakeUnitOfWork

R = CatalogRules()
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def uow():
    return FakeUnitOfWork(Base.metadata)


def application(**over):
    body = {
        "name": "Hangzhou Tea Co.",
        "registered_capital_fen": 200_000_000,
        "general_taxpayer": True,
        "contact": {"phone": "13800000000", "wechat": None, "email": None},
        "brand_authorization_levels": 1,
        "purchase_records": False,
        "categories": [],
    }
    body.update(over)
    return body


def listing(**over):
    body = {
        "title": "West Lake Longjing 250g",
        "category": "food_health",
        "price_fen": 9900,
        "stock": 5,
        "commission_bps": 1500,
        "market_commission_bps": 1200,
        "reference_price_fen": 12900,
        "brand": "Hangzhou Tea",
        "description": "Spring tea",
    }
    body.update(over)
    return body


def types(uow):
    return [t for t, _ in uow.events]


def active_supplier(uow) -> int:
    s = suppliers.register(uow, R, application())
    suppliers.pay_deposit(uow, s["id"], R.deposit_fen)
    uow.events.clear()
    return s["id"]


def listed_product(uow, **over) -> int:
    p = products.create(uow, R, active_supplier(uow), listing(**over))
    uow.events.clear()
    return p["id"]


def stock_of(uow, product_id):
    uow.session.expire_all()
    return uow.session.get(Product, product_id).stock


# --- suppliers ------------------------------------------------------------------------------
def test_a_qualified_supplier_waits_for_its_deposit_then_is_activated(uow):
    s = suppliers.register(uow, R, application())
    assert s["status"] == "pending_deposit" and uow.events == []

    half = suppliers.pay_deposit(uow, s["id"], R.deposit_fen // 2)
    assert half["status"] == "pending_deposit" and uow.events == []
    paid = suppliers.pay_deposit(uow, s["id"], R.deposit_fen // 2)

    assert paid["status"] == "active" and paid["deposit_fen"] == R.deposit_fen
    assert types(uow) == ["supplier_activated"]
    event = SupplierChanged.model_validate(uow.events[0][1])
    assert (event.supplier_id, event.status) == (s["id"], "active")
    assert not uow.committed  # handlers never commit


def test_a_supplier_without_a_deposit_to_pay_is_activated_at_once(uow):
    free = CatalogRules(deposit_fen=0)
    s = suppliers.register(uow, free, application())
    assert s["status"] == "active" and types(uow) == ["supplier_activated"]


def test_an_unqualified_supplier_is_refused_naming_every_rule(uow):
    with pytest.raises(RuleViolation) as exc:
        suppliers.register(uow, R, application(registered_capital_fen=1, general_taxpayer=False))
    assert {d["rule"] for d in exc.value.details} == {"registered_capital", "general_taxpayer"}
    assert uow.events == []


def test_suspending_a_supplier_makes_its_products_unavailable(uow):
    pid = listed_product(uow)
    supplier_id = uow.session.get(Product, pid).supplier_id

    suspended = suppliers.suspend(uow, supplier_id, "fake goods")

    assert suspended["status"] == "suspended"
    assert types(uow) == ["product_changed", "supplier_suspended"]
    assert uow.events[0][1]["available"] is False
    assert uow.events[1][1]["reason"] == "fake goods"
    uow.events.clear()
    assert suppliers.reinstate(uow, supplier_id)["status"] == "active"
    assert types(uow) == ["product_changed", "supplier_activated"]


# --- products -------------------------------------------------------------------------------
def test_an_active_supplier_lists_a_product_and_others_are_told(uow):
    supplier_id = active_supplier(uow)

    p = products.create(uow, R, supplier_id, listing())

    assert p["status"] == "listed" and p["available"] is True
    assert p["commission_fen"] == 1485  # 9,900 fen × 15 %
    assert types(uow) == ["product_listed"]
    snap = ProductSnapshot.model_validate(uow.events[0][1])
    assert (snap.product_id, snap.stock, snap.commission_fen) == (p["id"], 5, 1485)


def test_a_supplier_that_has_not_paid_cannot_list(uow):
    s = suppliers.register(uow, R, application())
    with pytest.raises(Conflict) as exc:
        products.create(uow, R, s["id"], listing())
    assert exc.value.code == "supplier_not_active" and uow.events == []


def test_a_listing_under_the_market_commission_is_refused(uow):
    supplier_id = active_supplier(uow)
    with pytest.raises(RuleViolation) as exc:
        products.create(uow, R, supplier_id, listing(commission_bps=1000))
    assert [d["rule"] for d in exc.value.details] == ["commission_not_below_market"]
    assert uow.events == []


def test_a_change_nobody_sees_emits_nothing_a_price_change_does(uow):
    pid = listed_product(uow)
    products.update(uow, R, pid, {"description": "Spring tea"}, None)
    assert uow.events == []
    changed = products.update(uow, R, pid, {"price_fen": 9000}, None)
    assert changed["price_fen"] == 9000
    assert types(uow) == ["product_changed"] and uow.events[0][1]["price_fen"] == 9000


def test_delisting_and_relisting_emit_once_each(uow):
    pid = listed_product(uow)
    products.delist(uow, pid, None)
    products.delist(uow, pid, None)
    products.relist(uow, pid, None)
    products.relist(uow, pid, None)
    assert types(uow) == ["product_delisted", "product_listed"]


# --- stock ----------------------------------------------------------------------------------
def test_reserving_takes_the_stock_and_selling_out_is_announced(uow):
    pid = listed_product(uow, stock=3)

    held = stock.reserve(uow, R, "order-1", [{"product_id": pid, "quantity": 3}], None)

    assert held["status"] == "held" and held["items"] == [{"product_id": pid, "quantity": 3}]
    assert stock_of(uow, pid) == 0
    assert types(uow) == ["product_changed"] and uow.events[0][1]["available"] is False


def test_a_reservation_takes_every_line_or_none(uow):
    a, b = listed_product(uow, stock=5), listed_product(uow, title="B", stock=1)
    with pytest.raises(Conflict) as exc:
        stock.reserve(
            uow,
            R,
            "order-2",
            [{"product_id": a, "quantity": 2}, {"product_id": b, "quantity": 2}],
            None,
        )
    assert exc.value.details == [
        {"product_id": b, "requested": 2, "available": 1, "reason": "insufficient_stock"}
    ]


def test_reserving_twice_with_the_same_id_takes_stock_once(uow):
    pid = listed_product(uow, stock=5)
    first = stock.reserve(uow, R, "order-3", [{"product_id": pid, "quantity": 2}], 600)
    again = stock.reserve(uow, R, "order-3", [{"product_id": pid, "quantity": 2}], 600)
    assert first == again and stock_of(uow, pid) == 3


def test_commit_sells_the_held_stock_and_release_gives_it_back_once(uow):
    pid = listed_product(uow, stock=5)
    stock.reserve(uow, R, "paid", [{"product_id": pid, "quantity": 2}], 600)
    stock.reserve(uow, R, "cancelled", [{"product_id": pid, "quantity": 1}], 600)

    assert stock.commit(uow, "paid")["status"] == "committed"
    assert stock.release(uow, "cancelled")["status"] == "released"
    assert stock.release(uow, "cancelled")["status"] == "released"
    assert stock_of(uow, pid) == 3
    # a full refund before shipping returns the paid stock, once
    assert stock.release(uow, "paid")["status"] == "returned"
    assert stock.release(uow, "paid")["status"] == "returned"
    assert stock_of(uow, pid) == 5
    assert stock.release(uow, "never-made")["status"] == "unknown"


def test_a_hold_expires_after_its_hold_seconds_plus_the_grace_and_not_before(uow, monkeypatch):
    pid = listed_product(uow, stock=5)
    monkeypatch.setattr(clock, "now", lambda: T0)
    held = stock.reserve(uow, R, "unpaid", [{"product_id": pid, "quantity": 2}], 600)
    deadline = T0 + timedelta(seconds=600 + R.reservation_grace_seconds)
    assert held["expires_at"] == clock.iso(deadline)

    assert queries.expired_reservation_ids(uow.session, deadline - timedelta(seconds=1)) == []
    assert queries.expired_reservation_ids(uow.session, deadline) == ["unpaid"]
    assert stock.release(uow, "unpaid")["status"] == "released"
    assert stock_of(uow, pid) == 5
    assert queries.expired_reservation_ids(uow.session, deadline) == []


def test_a_hold_without_hold_seconds_uses_the_catalog_default(uow, monkeypatch):
    pid = listed_product(uow, stock=5)
    monkeypatch.setattr(clock, "now", lambda: T0)
    stock.reserve(uow, R, "old-caller", [{"product_id": pid, "quantity": 1}], None)
    deadline = T0 + timedelta(seconds=R.default_hold_seconds + R.reservation_grace_seconds)
    assert queries.expired_reservation_ids(uow.session, deadline - timedelta(seconds=1)) == []
    assert queries.expired_reservation_ids(uow.session, deadline) == ["old-caller"]


def test_paying_after_expiry_retakes_the_stock_if_it_is_still_there(uow):
    pid = listed_product(uow, stock=3)
    stock.reserve(uow, R, "late", [{"product_id": pid, "quantity": 2}], 600)
    stock.release(uow, "late")
    assert stock.commit(uow, "late")["status"] == "committed"
    assert stock_of(uow, pid) == 1

    stock.reserve(uow, R, "too-late", [{"product_id": pid, "quantity": 1}], 600)
    stock.release(uow, "too-late")
    products.update(uow, R, pid, {"stock": 0}, None)  # sold elsewhere meanwhile
    with pytest.raises(Conflict) as exc:
        stock.commit(uow, "too-late")
    assert exc.value.code == "reservation_expired"


def test_a_supplier_is_found_by_its_contact_phone_for_sign_in(uow):
    first = active_supplier(uow)
    active_supplier(uow)  # a second supplier with the same contact phone
    assert queries.supplier_by_phone(uow.session, "+86 138-0000-0000") == {
        "id": first,
        "status": "active",
    }
    assert queries.supplier_by_phone(uow.session, "13900000000") is None
    assert queries.supplier_by_phone(uow.session, "") is None
