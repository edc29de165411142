"""The orders service against the real catalog service: prices, stock grants to orders' pool,
sales and returns speak the agreed RPC surface (shop and share are still fakes).

A product's shown ``stock`` is what is not sold yet: the catalog's own and what it granted to
orders' pool — units held by unpaid orders included, until the order is paid (the catalog
records the sale from ``order_paid``) or ends (the units go back to the pool)."""

from __future__ import annotations

import eventlet
import orders_support as sup
import pytest
import requests

ADDRESS = {"name": "李四", "phone": "13912345678", "line": "杭州市西湖区某路2号"}


def make_supplier_with_product(env, stock=5, price_fen=9900):
    supplier_id, _token, product_id = make_supplier_with_token(env, stock, price_fen)
    return supplier_id, product_id


def make_supplier_with_token(env, stock=5, price_fen=9900):
    reg = requests.post(
        env.url + "/api/v1/suppliers",
        timeout=15,
        json={
            "name": "Hangzhou Tea Co.",
            "registered_capital_fen": 200_000_000,
            "general_taxpayer": True,
            "contact": {"phone": "13800000000", "wechat": "hz_tea"},
            "brand_authorization_levels": 1,
        },
    )
    assert reg.status_code == 201, reg.text
    sup_id, token = reg.json()["id"], reg.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    dep = requests.post(
        f"{env.url}/api/v1/suppliers/{sup_id}/deposit",
        timeout=15,
        json={"amount_fen": 1_000_000},
        headers=headers,
    )
    assert dep.status_code == 200, dep.text
    prod = requests.post(
        env.url + "/api/v1/products",
        headers=headers,
        timeout=15,
        json={
            "title": "West Lake Longjing 250g",
            "category": "food_health",
            "price_fen": price_fen,
            "stock": stock,
            "commission_bps": 1500,
            "market_commission_bps": 1200,
            "reference_price_fen": 12900,
            "brand": "Hangzhou Tea",
            "description": "Spring tea",
        },
    )
    assert prod.status_code == 201, prod.text
    return sup_id, token, prod.json()["id"]


def product_stock(env, product_id):
    return requests.get(f"{env.url}/api/v1/products/{product_id}", timeout=15).json()["stock"]


def pool_units(env, product_id) -> int:
    """Orders' free pool units of the product (granted, held by no order)."""
    return sup.pool_units(product_id)  # read from this test's orders database


def test_checkout_pay_and_expiry_with_the_real_catalog(env_real_catalog):
    env = env_real_catalog
    supplier_id, pid = make_supplier_with_product(env, stock=5)
    r = env.post(
        "/api/v1/orders",
        role="member",
        sub=41,
        json={"items": [{"product_id": pid, "quantity": 2}], "address": ADDRESS},
    )
    assert r.status_code == 201, r.text
    order = r.json()["orders"][0]
    assert order["supplier_id"] == supplier_id and order["total_fen"] == 2 * 9900
    # the catalog granted all 5 to orders' pool; 2 are held by the unpaid order
    assert pool_units(env, pid) == 3 and product_stock(env, pid) == 5
    too_many = env.post(
        "/api/v1/orders",
        role="member",
        sub=42,
        json={"items": [{"product_id": pid, "quantity": 4}], "address": ADDRESS},
    )
    assert too_many.status_code == 409
    assert too_many.json()["error"]["details"][0]["available"] == 3
    assert pool_units(env, pid) == 3  # nothing leaked by the refused checkout

    paid = env.post(f"/api/v1/orders/{order['id']}/pay", role="member", sub=41)
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    detail = env.get(f"/api/v1/orders/{order['id']}", role="supplier", sub=supplier_id).json()
    assert detail["stock_state"] == "committed"
    sup.wait_for(lambda: product_stock(env, pid) == 3)  # sold: from order_paid

    unpaid = env.post(
        "/api/v1/orders",
        role="member",
        sub=43,
        json={"items": [{"product_id": pid, "quantity": 3}], "address": ADDRESS},
    ).json()["orders"][0]
    assert pool_units(env, pid) == 0
    env.set_clock("2099-01-01T00:00:00Z")
    try:
        assert env.run_timers()["expired"] == 1
        assert pool_units(env, pid) == 3  # the expired order's stock is back, for sale
        late = env.post(f"/api/v1/orders/{unpaid['id']}/pay", role="member", sub=43)
        assert late.status_code == 409
        assert pool_units(env, pid) == 3 and product_stock(env, pid) == 3
    finally:
        env.set_clock(None)
    # the contacts card moved to the messages service (tests/e2e/test_conversations.py)
    sup.wait_for(lambda: sup.events("order_paid"))


def test_a_full_refund_before_shipping_puts_the_stock_back_in_the_real_catalog(env_real_catalog):
    env = env_real_catalog
    supplier_id, pid = make_supplier_with_product(env, stock=5)
    order = env.post(
        "/api/v1/orders",
        role="member",
        sub=51,
        json={"items": [{"product_id": pid, "quantity": 2}], "address": ADDRESS},
    ).json()["orders"][0]
    assert env.post(f"/api/v1/orders/{order['id']}/pay", role="member", sub=51).status_code == 200
    sup.wait_for(lambda: product_stock(env, pid) == 3)  # sold: from order_paid
    refund = env.post(
        f"/api/v1/orders/{order['id']}/refunds",
        role="member",
        sub=51,
        json={"amount_fen": order["total_fen"], "reason": "changed my mind"},
    )
    assert refund.status_code == 201, refund.text
    approved = env.post(
        f"/api/v1/refunds/{refund.json()['id']}/approve", role="supplier", sub=supplier_id
    )
    assert approved.status_code == 200, approved.text
    sup.wait_for(lambda: product_stock(env, pid) == 5)
    env.run_timers()  # a retried release changes nothing
    assert product_stock(env, pid) == 5


@pytest.mark.postgres_only
def test_fifty_concurrent_checkouts_sell_exactly_the_ten_units_there_are(env_real_catalog):
    """The 50-way race through orders: priced from its read model, taken from orders' pool
    (the pool rows locked in product-id order, ``units >= q`` re-checked under the lock), the
    pool filled by the catalog's grants (its conditional UPDATE under the product's lock)."""
    env = env_real_catalog
    _, pid = make_supplier_with_product(env, stock=10)

    def attempt(n):
        return env.post(
            "/api/v1/orders",
            role="member",
            sub=1000 + n,
            json={"items": [{"product_id": pid, "quantity": 1}], "address": ADDRESS},
        ).status_code

    codes = list(eventlet.GreenPool(50).imap(attempt, range(50)))
    assert sorted(set(codes)) == [201, 409] and codes.count(201) == 10
    assert pool_units(env, pid) == 0
    assert product_stock(env, pid) == 10  # granted, held by the ten unpaid orders


def test_a_price_change_never_touches_a_placed_order_nor_sells_at_the_old_price(
    env_real_catalog,
):
    env = env_real_catalog
    supplier_id, token, pid = make_supplier_with_token(env, stock=10, price_fen=9900)
    first = env.post(
        "/api/v1/orders",
        role="member",
        sub=71,
        json={"items": [{"product_id": pid, "quantity": 1}], "address": ADDRESS},
    )
    assert first.status_code == 201, first.text
    order = first.json()["orders"][0]
    changed = requests.patch(
        f"{env.url}/api/v1/products/{pid}",
        json={"price_fen": 8800},
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )
    assert changed.status_code == 200, changed.text
    seen: list[tuple[int, int | None]] = []

    def checkout_at_new_price():
        r = env.post(
            "/api/v1/orders",
            role="member",
            sub=72,
            json={"items": [{"product_id": pid, "quantity": 1}], "address": ADDRESS},
        )
        total = r.json()["orders"][0]["total_fen"] if r.status_code == 201 else None
        seen.append((r.status_code, total))
        return r.status_code == 201

    # the read model may lag by one event: a stale price is refused (409) and refreshed,
    # never sold
    sup.wait_for(checkout_at_new_price)
    assert all(code == 409 or total == 8800 for code, total in seen), seen
    assert seen[-1] == (201, 8800)
    kept = env.get(f"/api/v1/orders/{order['id']}", role="member", sub=71).json()
    assert kept["total_fen"] == 9900 and kept["items"][0]["unit_price_fen"] == 9900
    assert product_stock(env, pid) == 10  # two unpaid orders hold 2 of the 10 granted

    delisted = requests.post(
        f"{env.url}/api/v1/products/{pid}/delist",
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )
    assert delisted.status_code == 200, delisted.text
    refused = env.post(
        "/api/v1/orders",
        role="member",
        sub=73,
        json={"items": [{"product_id": pid, "quantity": 1}], "address": ADDRESS},
    )
    assert refused.status_code == 409, refused.text  # by the read model or the empty pool
    # the delisting took orders' free units back (reclaim): only the two orders hold any
    assert pool_units(env, pid) == 0 and product_stock(env, pid) == 10
