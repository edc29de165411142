"""The orders service against the real catalog service: prices, stock reservation, commit and
release speak the agreed RPC surface (shop and share are still fakes)."""

from __future__ import annotations

import orders_support as sup
import requests

ADDRESS = {"name": "李四", "phone": "13912345678", "line": "杭州市西湖区某路2号"}


def make_supplier_with_product(env, stock=5, price_fen=9900):
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
    return sup_id, prod.json()["id"]


def product_stock(env, product_id):
    return requests.get(f"{env.url}/api/v1/products/{product_id}", timeout=15).json()["stock"]


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
    assert product_stock(env, pid) == 3
    too_many = env.post(
        "/api/v1/orders",
        role="member",
        sub=42,
        json={"items": [{"product_id": pid, "quantity": 4}], "address": ADDRESS},
    )
    assert too_many.status_code == 409
    assert product_stock(env, pid) == 3  # nothing leaked by the refused checkout

    paid = env.post(f"/api/v1/orders/{order['id']}/pay", role="member", sub=41)
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    detail = env.get(f"/api/v1/orders/{order['id']}", role="supplier", sub=supplier_id).json()
    assert detail["stock_state"] == "committed"

    unpaid = env.post(
        "/api/v1/orders",
        role="member",
        sub=43,
        json={"items": [{"product_id": pid, "quantity": 3}], "address": ADDRESS},
    ).json()["orders"][0]
    assert product_stock(env, pid) == 0
    env.set_clock("2099-01-01T00:00:00Z")
    try:
        assert env.run_timers()["expired"] == 1
        assert product_stock(env, pid) == 3  # the expired order's stock is back
        late = env.post(f"/api/v1/orders/{unpaid['id']}/pay", role="member", sub=43)
        assert late.status_code == 409
        assert product_stock(env, pid) == 3
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
    assert product_stock(env, pid) == 3
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
