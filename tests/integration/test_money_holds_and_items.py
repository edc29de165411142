"""Money exactly right for every party (issue 16), on the real catalog, shop, orders, payouts and
gateway: an open refund holds settlement (approving it leaves nothing negative, rejecting it lets
the order settle), refunds name their items and reverse each item's commission at its own rate,
items the shop does not carry earn nothing, and a supplier sees its balance and statement."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import timedelta

import pytest
import requests

from shared import clock
from shared.testing import wait_for

_seq = itertools.count(1)


class Api:
    def __init__(self, gateway):
        self.url, self.gateway = gateway.url, gateway

    def call(self, method, path, token=None, expect=(200, 201, 204), **kw):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        resp = requests.request(method, self.url + path, headers=headers, timeout=30, **kw)
        assert resp.status_code in expect, f"{method} {path} → {resp.status_code}: {resp.text}"
        if resp.headers.get("Content-Type", "").startswith("application/json"):
            return resp.json()
        return resp

    @property
    def admin(self):
        return self.gateway.admin_token


def supplier(api) -> dict:
    n = next(_seq)
    sup = api.call(
        "POST",
        "/api/v1/suppliers",
        json={
            "name": f"供应商{n}",
            "registered_capital_fen": 200_000_000,
            "general_taxpayer": True,
            "brand_authorization_levels": 1,
            "contact": {"phone": f"1380000{n:04d}"},
        },
    )
    api.call(
        "POST",
        f"/api/v1/suppliers/{sup['id']}/deposit",
        token=sup["token"],
        json={"amount_fen": 1_000_000},
    )
    return sup


def product(api, sup, price_fen, commission_bps) -> dict:
    return api.call(
        "POST",
        "/api/v1/products",
        token=sup["token"],
        json={
            "title": f"好茶{next(_seq)}",
            "category": "food_health",
            "price_fen": price_fen,
            "stock": 100,
            "commission_bps": commission_bps,
            "market_commission_bps": commission_bps,
            "reference_price_fen": price_fen + 1000,
            "description": "产地直发",
        },
    )


def member(api) -> dict:
    n = next(_seq)
    return api.call(
        "POST",
        "/api/v1/members",
        json={
            "nickname": f"会员{n}",
            "phone": f"1390001{n:04d}",
            "credit_score": 750,
            "real_name_verified": True,
        },
    )


def keeper_with_shop(api, picks) -> tuple[dict, dict]:
    keeper = member(api)
    shop = api.call("POST", "/api/v1/shops", token=keeper["token"], json={"name": "好物小铺"})
    shop = api.call("POST", f"/api/v1/shops/{shop['id']}/verification", token=keeper["token"])
    for prod in picks:
        wait_for(
            lambda prod=prod: (
                requests.put(
                    f"{api.url}/api/v1/shops/{shop['id']}/products/{prod['id']}",
                    headers={"Authorization": f"Bearer {keeper['token']}"},
                    json={"reason": "我自己回购了三次"},
                    timeout=10,
                ).status_code
                == 200
            )
        )
    return keeper, shop


def bought_and_received(api, buyer, sup, shop, items) -> dict:
    body = {
        "items": [{"product_id": p["id"], "quantity": 1} for p in items],
        "address": {"name": "王小明", "phone": "13700001111", "line": "上海市徐汇区漕溪北路 88 号"},
        "shop_number": shop["shop_number"],
    }
    (order,) = api.call("POST", "/api/v1/orders", token=buyer["token"], json=body)["orders"]
    api.call("POST", f"/api/v1/orders/{order['id']}/pay", token=buyer["token"])
    api.call(
        "POST",
        f"/api/v1/orders/{order['id']}/ship",
        token=sup["token"],
        json={"carrier": "顺丰", "tracking_no": f"SF{order['id']}"},
    )
    api.call("POST", f"/api/v1/orders/{order['id']}/confirm", token=buyer["token"])
    return order


def line_of(api, keeper, shop, order_id) -> dict | None:
    earned = api.call("GET", f"/api/v1/shops/{shop['id']}/earnings", token=keeper["token"])
    return next((ln for ln in earned["lines"] if ln["order_id"] == order_id), None)


@pytest.fixture
def platform(gateway, start_service):
    for name in ("catalog", "shop", "orders", "payouts"):
        start_service(name)
    return Api(gateway)


def test_an_open_refund_holds_settlement_and_its_decision_settles_or_reverses_it(platform):
    api = platform
    sup = supplier(api)
    tea = product(api, sup, 6800, 1800)
    keeper, shop = keeper_with_shop(api, [tea])
    buyer = member(api)
    kept = bought_and_received(api, buyer, sup, shop, [tea])  # its refund will be approved
    rejected = bought_and_received(api, buyer, sup, shop, [tea])  # its refund will be rejected
    received_at = clock.now()
    asks = {}
    for order in (kept, rejected):
        asks[order["id"]] = api.call(
            "POST",
            f"/api/v1/orders/{order['id']}/refunds",
            token=buyer["token"],
            json={"amount_fen": 6800, "reason": "不想要了"},
        )
    for order in (kept, rejected):  # the hold is visible in the keeper's lines, with its reason
        line = wait_for(
            lambda order=order: (
                (ln := line_of(api, keeper, shop, order["id"])) and ln["status"] == "held" and ln
            )
        )
        assert [h["reason"] for h in line["holds"]] == ["refund_open"]
        assert "held: refund_open" in line["notes"]
    balance = api.call("GET", f"/api/v1/suppliers/{sup['id']}/balance", token=sup["token"])
    assert balance["held_fen"] == 2 * (6800 - 1224)  # ... and in the supplier's
    assert {ln["status"] for ln in balance["lines"]} == {"held"}

    # 16.8 days after receipt the window has closed, but the refunds are still open
    clock.set_now(received_at + timedelta(days=16, hours=19))
    run = api.call("POST", "/api/v1/admin/settlements/run", token=api.admin, json={})
    assert run["count"] == 0 and run["settled"] == []
    earned = api.call("GET", f"/api/v1/shops/{shop['id']}/earnings", token=keeper["token"])
    assert (earned["pending_fen"], earned["settleable_fen"]) == (2 * 1224, 0)
    assert earned["held_fen"] == 2 * 1224

    # the supplier approves one: the reversal comes out of pending, nothing goes negative
    api.call("POST", f"/api/v1/refunds/{asks[kept['id']]['id']}/approve", token=sup["token"])
    wait_for(lambda: line_of(api, keeper, shop, kept["id"])["status"] == "refunded")
    # and rejects the other: its hold is released and it settles at the next run
    api.call("POST", f"/api/v1/refunds/{asks[rejected['id']]['id']}/reject", token=sup["token"])
    wait_for(lambda: line_of(api, keeper, shop, rejected["id"])["holds"] == [])
    run = api.call("POST", "/api/v1/admin/settlements/run", token=api.admin, json={})
    # (the refunded order settles with nothing left to settle)
    assert {o["order_id"]: o["amount_fen"] for o in run["settled"]} == {
        kept["id"]: 0,
        rejected["id"]: 1224,
    }
    paid = api.call("POST", "/api/v1/admin/payouts/run", token=api.admin, json={})
    assert [(p["shop_id"], p["amount_fen"], p["status"]) for p in paid["payouts"]] == [
        (shop["id"], 1224, "paid")
    ]
    earned = api.call("GET", f"/api/v1/shops/{shop['id']}/earnings", token=keeper["token"])
    assert (earned["pending_fen"], earned["settleable_fen"], earned["paid_fen"]) == (0, 0, 1224)
    assert earned["negative_balance"] is None and earned["held_fen"] == 0
    balance = api.call("GET", f"/api/v1/suppliers/{sup['id']}/balance", token=sup["token"])
    assert (balance["pending_fen"], balance["settleable_fen"]) == (0, 0)
    assert (balance["paid_fen"], balance["held_fen"]) == (6800 - 1224, 0)
    assert balance["negative_balance"] is None
    books = api.call("GET", "/api/v1/admin/books", token=api.admin)
    assert books["balanced"], books


def test_item_refunds_reverse_each_items_own_rate_and_uncarried_items_earn_nothing(platform):
    api = platform
    sup = supplier(api)
    rich = product(api, sup, 10000, 2000)  # 20 %
    lean = product(api, sup, 5000, 900)  # 9 %
    unpicked = product(api, sup, 3000, 3000)  # 30 %, but the shop does not carry it
    keeper, shop = keeper_with_shop(api, [rich, lean])
    buyer = member(api)
    order = bought_and_received(api, buyer, sup, shop, [rich, lean, unpicked])

    line = wait_for(lambda: line_of(api, keeper, shop, order["id"]))
    assert line["commission_fen"] == 2000 + 450  # nothing on the uncarried item
    by_product = {i["product_id"]: i for i in line["items"]}
    assert by_product[unpicked["id"]]["commission_fen"] == 0
    assert by_product[unpicked["id"]]["note"] == "not carried by the shop"
    assert f"product {unpicked['id']}: not carried by the shop" in line["notes"]

    # refunding the 9 % item (50 CNY) reverses exactly its 4.50 CNY, not a blended rate
    asked = api.call(
        "POST",
        f"/api/v1/orders/{order['id']}/refunds",
        token=buyer["token"],
        json={
            "amount_fen": 5000,
            "reason": "坏了",
            "items": [{"product_id": lean["id"], "amount_fen": 5000}],
        },
    )
    assert asked["items"] == [{"product_id": lean["id"], "amount_fen": 5000}]
    api.call("POST", f"/api/v1/refunds/{asked['id']}/approve", token=sup["token"])
    line = wait_for(
        lambda: (ln := line_of(api, keeper, shop, order["id"])) and ln["refunded_fen"] and ln
    )
    assert line["reversed_commission_fen"] == 450
    assert line["net_commission_fen"] == 2000

    # a refund naming more than is left of an item is refused
    too_much = requests.post(
        f"{api.url}/api/v1/orders/{order['id']}/refunds",
        headers={"Authorization": f"Bearer {buyer['token']}"},
        json={
            "amount_fen": 1,
            "reason": "再退",
            "items": [{"product_id": lean["id"], "amount_fen": 1}],
        },
        timeout=10,
    )
    assert too_much.status_code == 422, too_much.text

    # the supplier sees what it is owed, per order, and its monthly statement
    balance = api.call("GET", f"/api/v1/suppliers/{sup['id']}/balance", token=sup["token"])
    assert balance["pending_fen"] == 18000 - 5000 - 2000
    (sline,) = balance["lines"]
    assert (sline["order_id"], sline["payable_fen"], sline["refunded_fen"]) == (
        order["id"],
        11000,
        5000,
    )
    month = clock.now().strftime("%Y-%m")
    resp = api.call(
        "GET", f"/api/v1/suppliers/{sup['id']}/statements/{month}.csv", token=sup["token"]
    )
    rows = list(csv.reader(io.StringIO(resp.text)))
    assert rows[0][:6] == ["date", "entry", "kind", "order_id", "payable_fen", "paid_fen"]
    assert [r[2] for r in rows[1:]] == ["opening_balance", "accrual", "refund", "closing_balance"]
    assert rows[-1][4] == "11000"
    # another supplier sees none of it
    other = supplier(api)
    for path in ("/balance", f"/statements/{month}.csv"):
        resp = requests.get(
            f"{api.url}/api/v1/suppliers/{sup['id']}{path}",
            headers={"Authorization": f"Bearer {other['token']}"},
            timeout=10,
        )
        assert resp.status_code == 404, resp.text
    assert api.call("GET", f"/api/v1/suppliers/{sup['id']}/balance", token=api.admin)["lines"]
