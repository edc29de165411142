"""Stock allotments to orders' pool (issue 19), through a fake unit of work (SQLite): grants,
sales and refunds of pool units, reclaims before a stock change."""

from datetime import UTC, datetime

import pytest

from catalog import domain, queries
from catalog.domain import CatalogRules
from catalog.handlers import allotments, products, suppliers
from catalog.models import Base, Product, StockGrant, StockReclaim
from shared.contracts.catalog import ReclaimOut
from shared.contracts.events import OrderPaid
from shared.errors import ServiceUnavailable
from shared.testing import FakeUnitOfWork

R = CatalogRules()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres_only)])
def uow(request):
    """Each scenario on SQLite in memory and on PostgreSQL, whose moves of products' stock take
    one statement (``allotments._moving_all``) where SQLite's take one per product."""
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("make_database")("catalog", migrate=False)
    fake = FakeUnitOfWork(Base.metadata, url=url)
    yield fake
    fake.close()


def supplier(uow) -> int:
    s = suppliers.register(
        uow,
        R,
        {
            "name": "Hangzhou Tea Co.",
            "registered_capital_fen": 200_000_000,
            "general_taxpayer": True,
            "contact": {"phone": "13800000000", "wechat": None, "email": None},
            "brand_authorization_levels": 1,
            "purchase_records": False,
            "categories": [],
        },
    )
    suppliers.pay_deposit(uow, s["id"], R.deposit_fen)
    return s["id"]


def product(uow, sid: int, stock_: int = 10, title: str = "Longjing") -> int:
    p = products.create(
        uow,
        R,
        sid,
        {
            "title": title,
            "category": "food_health",
            "price_fen": 9900,
            "stock": stock_,
            "commission_bps": 1500,
            "market_commission_bps": 1200,
            "reference_price_fen": 12900,
        },
    )
    uow.events.clear()
    return p["id"]


def columns(uow, pid: int) -> tuple[int, int, int]:
    uow.session.expire_all()
    p = uow.session.get(Product, pid)
    return p.stock, p.allotted, p.units_sold


def grant_statuses(uow) -> dict[str, str]:
    uow.session.expire_all()
    return {g.grant_id: g.status for g in uow.session.query(StockGrant)}


def paid(order_id: int, lines: list[tuple[int, int]], allotted: bool = True) -> OrderPaid:
    return OrderPaid(
        order_id=order_id,
        buyer_id=1,
        supplier_id=1,
        shop_id=None,
        share_id=None,
        self_referral=False,
        paid_fen=100,
        lines=[
            {
                "product_id": p,
                "title": "t",
                "quantity": q,
                "unit_price_fen": 1,
                "amount_fen": q,
                "commission_bps": 0,
            }
            for p, q in lines
        ],
        paid_at="2030-01-01T00:00:00Z",
        reservation_id=f"order-{order_id}",
        allotted=allotted,
    )


def test_a_grant_takes_what_there_is_and_buyers_still_see_every_unit(uow):
    sid = supplier(uow)
    a, b = product(uow, sid, 30), product(uow, sid, 5, "B")
    answer = allotments.grant(
        uow,
        "g1",
        [
            {"product_id": a, "quantity": 20},
            {"product_id": b, "quantity": 20},
            {"product_id": 999, "quantity": 3},
        ],
    )
    assert answer == {
        "grant_id": "g1",
        "items": [
            {"product_id": a, "quantity": 20, "price_fen": 9900},
            {"product_id": b, "quantity": 5, "price_fen": 9900},
            {"product_id": 999, "quantity": 0, "price_fen": None},
        ],
    }
    assert columns(uow, a) == (10, 20, 0) and columns(uow, b) == (0, 5, 0)
    assert [p["stock"] for p in queries.get_products(uow.session, [a, b])] == [30, 5]
    assert all(p["available"] for p in queries.get_products(uow.session, [a, b]))
    assert uow.events == []  # what buyers see did not change


def test_a_repeated_grant_grants_nothing_new(uow):
    sid = supplier(uow)
    a = product(uow, sid, 30)
    first = allotments.grant(uow, "g1", [{"product_id": a, "quantity": 20}])
    again = allotments.grant(uow, "g1", [{"product_id": a, "quantity": 20}])
    assert first == again and columns(uow, a) == (10, 20, 0)
    # a repeat after a price change says the price now (orders' pool sells at it)
    products.update(uow, R, a, {"price_fen": 9000}, None)
    uow.session.flush()
    assert allotments.grant(uow, "g1", [{"product_id": a, "quantity": 20}])["items"] == [
        {"product_id": a, "quantity": 20, "price_fen": 9000}
    ]


def test_delisted_or_suspended_products_are_granted_nothing(uow):
    sid = supplier(uow)
    a, b = product(uow, sid, 30), product(uow, sid, 30, "B")
    products.delist(uow, a, None)
    uow.session.flush()  # the entrypoints commit between calls
    assert allotments.grant(uow, "g1", [{"product_id": a, "quantity": 2}])["items"] == [
        {"product_id": a, "quantity": 0, "price_fen": 9900}
    ]
    suppliers.suspend(uow, sid)
    uow.session.flush()
    assert allotments.grant(uow, "g2", [{"product_id": b, "quantity": 2}])["items"] == [
        {"product_id": b, "quantity": 0, "price_fen": 9900}
    ]
    assert columns(uow, a) == (30, 0, 0) and columns(uow, b) == (30, 0, 0)


def test_a_paid_pool_order_is_sold_once_and_selling_out_is_announced(uow):
    sid = supplier(uow)
    a = product(uow, sid, 4)
    allotments.grant(uow, "g1", [{"product_id": a, "quantity": 4}])
    allotments.sell_from_pool(uow, [paid(1, [(a, 1), (a, 2)]), paid(1, [(a, 3)])])
    allotments.sell_from_pool(uow, [paid(1, [(a, 3)])])  # a duplicate event
    assert columns(uow, a) == (0, 1, 3)
    found = queries.find_reservation(uow.session, "order-1")
    assert (found["status"], found["items"]) == ("committed", [{"product_id": a, "quantity": 3}])
    assert uow.events == []
    allotments.sell_from_pool(uow, [paid(2, [(a, 1)])])
    assert columns(uow, a) == (0, 0, 4)
    assert [(t, d["stock"], d["available"]) for t, d in uow.events] == [
        ("product_changed", 0, False)
    ]


def test_a_refund_that_overtakes_order_paid_puts_the_units_back_and_the_event_changes_nothing(
    uow,
):
    sid = supplier(uow)
    a = product(uow, sid, 10)
    allotments.grant(uow, "g1", [{"product_id": a, "quantity": 5}])
    items = [{"product_id": a, "quantity": 2}]
    assert allotments.release(uow, "order-1", True, items)["status"] == "returned"
    assert allotments.release(uow, "order-1", True, items)["status"] == "returned"
    assert columns(uow, a) == (7, 3, 0)
    allotments.sell_from_pool(uow, [paid(1, [(a, 2)])])
    assert columns(uow, a) == (7, 3, 0)
    # and when the event came first, the refund returns the sold units
    allotments.sell_from_pool(uow, [paid(2, [(a, 1)])])
    assert allotments.release(uow, "order-2", True, [{"product_id": a, "quantity": 1}])[
        "status"
    ] == ("returned")
    assert columns(uow, a) == (8, 2, 0)


class FakeOrders:
    """orders' reclaim_stock: its free pool per product and the grant ids it applied."""

    def __init__(self, pool: dict[int, int], applied: set[str], down: bool = False):
        self.pool, self.applied, self.down = pool, applied, down
        self.answers: dict[str, dict] = {}
        self.calls: list[tuple] = []

    def __call__(self, reclaim_id, product_ids, grant_ids):
        self.calls.append((reclaim_id, list(product_ids), list(grant_ids)))
        if self.down:
            raise ServiceUnavailable("the orders service is not running")
        if reclaim_id not in self.answers:
            items = [{"product_id": p, "units": self.pool.pop(p, 0)} for p in product_ids]
            revoked = [g for g in grant_ids if g not in self.applied]
            self.answers[reclaim_id] = {
                "reclaim_id": reclaim_id,
                "items": items,
                "revoked": revoked,
            }
        return self.answers[reclaim_id]


def test_a_reclaim_brings_the_free_pool_units_and_the_unapplied_grants_back(uow):
    sid = supplier(uow)
    a, b = product(uow, sid, 30), product(uow, sid, 30, "B")
    allotments.grant(uow, "g1", [{"product_id": a, "quantity": 10}])
    allotments.grant(
        uow, "g2", [{"product_id": a, "quantity": 5}, {"product_id": b, "quantity": 4}]
    )
    allotments.sell_from_pool(uow, [paid(1, [(a, 3)])])  # g1 applied: 7 free, 3 sold
    orders = FakeOrders({a: 7}, applied={"g1"})
    targets = allotments.reclaim_targets(uow.session, [a])
    assert targets == [a]
    rid = allotments.owe(uow, targets)
    allotments.reclaim(uow, rid, [a], orders)
    assert orders.calls == [(rid, [a], ["g1", "g2"])]
    assert columns(uow, a) == (15 + 7 + 5, 0, 3)
    assert columns(uow, b) == (30, 0, 0)  # g2 was revoked: its every line came back
    assert grant_statuses(uow) == {"g1": domain.SETTLED, "g2": domain.REVOKED}
    assert allotments.reclaim_targets(uow.session, [a, b]) == []
    # applied once: the same answer again changes nothing
    again = allotments.apply(uow, rid, [a], ["g1", "g2"], ReclaimOut(**orders.answers[rid]))
    assert again is False and columns(uow, a) == (27, 0, 3)


def test_nothing_out_at_orders_means_no_reclaim(uow):
    sid = supplier(uow)
    a = product(uow, sid, 30)
    assert allotments.reclaim_targets(uow.session, [a]) == []
    allotments.nothing_out(uow.session, [a])  # the change goes through as always


def test_units_granted_without_a_recorded_reclaim_ask_for_one_first(uow):
    sid = supplier(uow)
    a = product(uow, sid, 30)
    allotments.grant(uow, "g1", [{"product_id": a, "quantity": 10}])
    with pytest.raises(allotments.ReclaimFirst) as exc:
        allotments.nothing_out(uow.session, [a])
    assert exc.value.product_ids == [a]
    # a reclaim recorded for other products does not cover it either
    rid = allotments.owe(uow, [a + 1])
    with pytest.raises(allotments.ReclaimFirst):
        allotments.reclaim(uow, rid, [a], FakeOrders({}, set()))


def test_an_owed_reclaim_whose_call_failed_is_applied_once_by_the_retry(uow):
    sid = supplier(uow)
    a = product(uow, sid, 30)
    allotments.grant(uow, "g1", [{"product_id": a, "quantity": 10}])
    orders = FakeOrders({a: 10}, {"g1"}, down=True)
    rid = allotments.owe(uow, [a])
    with pytest.raises(ServiceUnavailable):
        allotments.reclaim(uow, rid, [a], orders)
    assert columns(uow, a) == (20, 10, 0)
    orders.down = False
    owed = allotments.owed_reclaims(uow.session, datetime(2100, 1, 1, tzinfo=UTC))
    assert owed == [(rid, [a])]
    assert allotments.retry_reclaim(uow, rid, [a], orders) is True
    assert allotments.retry_reclaim(uow, rid, [a], orders) is False
    assert columns(uow, a) == (30, 0, 0)
    uow.session.expire_all()
    assert uow.session.get(StockReclaim, rid).status == domain.APPLIED
    assert allotments.owed_reclaims(uow.session, datetime(2100, 1, 1, tzinfo=UTC)) == []


def test_a_batch_moves_all_its_products_at_once(uow):
    """A batch of pool orders over three products: each product moved by the batch's total,
    the one sold out announced — on PostgreSQL in one statement, on SQLite one per product."""
    from sqlalchemy import event

    sid = supplier(uow)
    a, b, c = product(uow, sid, 5), product(uow, sid, 5, "B"), product(uow, sid, 1, "C")
    allotments.grant(
        uow, "g1", [{"product_id": a, "quantity": 5}, {"product_id": b, "quantity": 5}]
    )
    allotments.grant(uow, "g2", [{"product_id": c, "quantity": 1}])
    uow.events.clear()
    moves: list[str] = []

    def count(conn, cursor, statement, *rest):
        if statement.startswith(("UPDATE products", "WITH locked")):
            moves.append(statement)

    event.listen(uow.engine, "before_cursor_execute", count)
    allotments.sell_from_pool(uow, [paid(1, [(a, 2), (c, 1)]), paid(2, [(b, 1), (a, 1)])])
    event.remove(uow.engine, "before_cursor_execute", count)
    assert (columns(uow, a), columns(uow, b), columns(uow, c)) == ((0, 2, 3), (0, 4, 1), (0, 0, 1))
    assert [(t, d["product_id"], d["stock"], d["available"]) for t, d in uow.events] == [
        ("product_changed", c, 0, False)
    ]
    assert len(moves) == (1 if uow.engine.dialect.name == "postgresql" else 3)


@pytest.mark.postgres_only
def test_two_batches_selling_the_same_products_at_once_never_deadlock(make_database):
    """Two catalog instances each selling a batch of pool orders over the same products: each
    batch's reservation lines hold KEY SHARE locks on the products (their foreign key) when
    its stock moves. The move's row locks must not wait for those (FOR NO KEY UPDATE, as an
    UPDATE takes): with FOR UPDATE the two batches deadlocked (the money-path benchmark with
    two instances). Both moves reach the barrier with their lines written, then move."""
    import threading

    url = make_database("catalog", migrate=False)
    first, second = FakeUnitOfWork(Base.metadata, url=url), FakeUnitOfWork(Base.metadata, url=url)
    try:
        sid = supplier(first)
        a, b = product(first, sid, 10), product(first, sid, 10, "B")
        allotments.grant(first, "g1", [{"product_id": a, "quantity": 10}])
        allotments.grant(first, "g2", [{"product_id": b, "quantity": 10}])
        first.session.commit()
        both_wrote = threading.Barrier(2, timeout=30)
        move = allotments._move

        def after_both_wrote(uow, quantities, **signs):
            both_wrote.wait()
            return move(uow, quantities, **signs)

        failures: list[BaseException] = []

        def sell(uow, order_id: int, lines: list[tuple[int, int]]) -> None:
            try:
                allotments.sell_from_pool(uow, [paid(order_id, lines)])
                uow.session.commit()
            except BaseException as exc:  # noqa: BLE001 (reported below)
                failures.append(exc)
                uow.session.rollback()

        allotments._move = after_both_wrote
        try:
            threads = [
                threading.Thread(target=sell, args=(first, 1, [(b, 1), (a, 1)])),
                threading.Thread(target=sell, args=(second, 2, [(a, 2), (b, 2)])),
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        finally:
            allotments._move = move
        assert failures == []
        assert columns(first, a) == (0, 7, 3) and columns(first, b) == (0, 7, 3)
    finally:
        first.close()
        second.close()
