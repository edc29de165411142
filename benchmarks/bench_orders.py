"""Orders benchmark: paid orders per second, checkout → paid, through the gateway.

Each iteration of a buyer is what a real buyer does: ``POST /api/v1/orders`` (one product,
quantity 1: priced from orders' read model of the catalog — no RPC —, one transaction in the
orders database, one ``reserve_stock`` RPC) and then ``POST /api/v1/orders/{id}/pay`` (the
sandbox payment applied in one transaction with ``order_paid`` in the outbox; no RPC: the
catalog commits the stock when it consumes ``order_paid``). 3 RPCs and 9 SQL statements per
paid order on the synchronous path (services/orders/README.md "The money path"; counted by
``services/orders/tests/integration/test_orders_paid_order_cost.py``). One paid order per
iteration; p50/p99 are of the whole checkout → paid round. 20 concurrent buyers,
PostgreSQL, against ``GET /api/v1/echo`` measured in the same run. Goal: ≥ 200 paid orders/s.

Seeding (once per platform run) goes through the gateway: one supplier with its deposit, 40
products with plenty of stock (picked at random so buyers do not all queue on one stock row),
20 members.
"""

from __future__ import annotations

import random
import threading

import requests

CONCURRENCY = 20
DURATION = 5.0
PRODUCTS = 40
ADDRESS = {"name": "Bench Buyer", "phone": "13800138000", "line": "1 Bench Road, Shanghai"}
_seeded: dict[str, dict] = {}


def seed(ctx) -> dict:
    if ctx.url in _seeded:
        return _seeded[ctx.url]
    reg = requests.post(
        f"{ctx.url}/api/v1/suppliers",
        timeout=30,
        json={
            "name": "Orders Bench Supplier",
            "registered_capital_fen": 500_000_000,
            "general_taxpayer": True,
            "contact": {"phone": "13900000001"},
            "brand_authorization_levels": 1,
        },
    )
    reg.raise_for_status()
    sup = reg.json()
    sup_headers = {"Authorization": f"Bearer {sup['token']}"}
    requests.post(
        f"{ctx.url}/api/v1/suppliers/{sup['id']}/deposit",
        timeout=30,
        json={"amount_fen": 1_000_000},
        headers=sup_headers,
    ).raise_for_status()
    product_ids = []
    for n in range(PRODUCTS):
        resp = requests.post(
            f"{ctx.url}/api/v1/products",
            timeout=30,
            headers=sup_headers,
            json={
                "title": f"bench tea #{n}",
                "category": "food_health",
                "price_fen": 1000 + n,
                "stock": 1_000_000,
                "commission_bps": 1000,
                "market_commission_bps": 900,
                "reference_price_fen": 2000 + n,
                "description": "benchmark product",
                "brand": "Bench",
            },
        )
        resp.raise_for_status()
        product_ids.append(resp.json()["id"])
    buyers = []
    for n in range(CONCURRENCY):
        resp = requests.post(
            f"{ctx.url}/api/v1/members",
            timeout=30,
            json={
                "nickname": f"buyer{n}",
                "phone": f"137{n:08d}",
                "credit_score": 650,
                "real_name_verified": True,
            },
        )
        resp.raise_for_status()
        buyers.append({"Authorization": f"Bearer {resp.json()['token']}"})
    _seeded[ctx.url] = {"products": product_ids, "buyers": buyers}
    return _seeded[ctx.url]


def run(ctx) -> list[dict]:
    world = seed(ctx)
    base = ctx.url
    local = threading.local()
    counter = iter(range(10**9))
    lock = threading.Lock()

    def buyer_headers():
        if not hasattr(local, "headers"):
            with lock:
                n = next(counter)
            local.headers = world["buyers"][n % len(world["buyers"])]
            local.rnd = random.Random(n)
        return local.headers

    def checkout_and_pay(session):
        headers = buyer_headers()
        pid = local.rnd.choice(world["products"])
        resp = session.post(
            f"{base}/api/v1/orders",
            headers=headers,
            timeout=30,
            json={"items": [{"product_id": pid, "quantity": 1}], "address": ADDRESS},
        )
        if resp.status_code != 201:
            return False
        order_id = resp.json()["orders"][0]["id"]
        paid = session.post(f"{base}/api/v1/orders/{order_id}/pay", headers=headers, timeout=30)
        return paid.status_code == 200 and paid.json()["status"] == "paid"

    assert checkout_and_pay(requests.Session()), "a checkout → pay round failed before the load"
    floor = ctx.echo_floor(concurrency=CONCURRENCY, duration=DURATION)
    measured = ctx.load(checkout_and_pay, concurrency=CONCURRENCY, duration=DURATION)
    return [
        ctx.figure(
            "paid orders/s, checkout → paid through the gateway (20 buyers)",
            measured,
            floor,
            unit="orders/s",
            goal="≥ 200 paid orders/s (ratio: paid orders per echo round trip)",
        )
    ]
