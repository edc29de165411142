"""Building blocks of the end-to-end stories: each step is one HTTP call a real client makes."""

from __future__ import annotations

import random
from itertools import count

from shared.testing import wait_for as eventually  # noqa: F401  (re-exported for the stories)

_seq = count(1)


def unique_phone(prefix: str = "139") -> str:
    return f"{prefix}{random.randint(10_000_000, 99_999_999)}"


def ok(resp, *codes):
    codes = codes or (200, 201, 204)
    assert resp.status_code in codes, (
        f"{resp.request.method} {resp.request.url} → {resp.status_code}: {resp.text[:400]}"
    )
    return (
        resp.json()
        if resp.content and resp.headers.get("Content-Type", "").startswith("application/json")
        else resp
    )


def supplier(api, category_note: str = "") -> dict:
    n = next(_seq)
    sup = ok(
        api.post(
            "/api/v1/suppliers",
            json={
                "name": f"供应商{n}{category_note}",
                "registered_capital_fen": 200_000_000,
                "general_taxpayer": True,
                "brand_authorization_levels": 1,
                "contact": {
                    "phone": unique_phone("138"),
                    "wechat": f"sup-{n}",
                    "email": f"sup{n}@example.com",
                },
            },
        ),
        201,
    )
    ok(
        api.post(
            f"/api/v1/suppliers/{sup['id']}/deposit",
            token=sup["token"],
            json={"amount_fen": 1_000_000},
        )
    )
    return sup


def product(
    api,
    sup: dict,
    title: str = "云南古树滇红茶",
    price_fen: int = 12_800,
    commission_bps: int = 2_000,
    stock: int = 100,
    category: str = "food_health",
) -> dict:
    return ok(
        api.post(
            "/api/v1/products",
            token=sup["token"],
            json={
                "title": title,
                "category": category,
                "price_fen": price_fen,
                "stock": stock,
                "commission_bps": commission_bps,
                "market_commission_bps": commission_bps - 100,
                "reference_price_fen": price_fen + 1_000,
                "brand": "山野",
                "description": f"{title}，产地直发。",
            },
        ),
        201,
    )


def member(api, credit: int = 750, verified: bool = True) -> dict:
    n = next(_seq)
    return ok(
        api.post(
            "/api/v1/members",
            json={
                "nickname": f"会员{n}",
                "phone": unique_phone(),
                "credit_score": credit,
                "real_name_verified": verified,
            },
        ),
        201,
    )


def keeper_with_shop(api, name: str = "好物") -> tuple[dict, dict]:
    keeper = member(api)
    shop = ok(
        api.post("/api/v1/shops", token=keeper["token"], json={"name": f"{name}{next(_seq)}"}), 201
    )
    shop = ok(api.post(f"/api/v1/shops/{shop['id']}/verification", token=keeper["token"]))
    assert shop["status"] == "active"
    return keeper, shop


def pick(api, keeper, shop, prod, reason="我自己回购了三次") -> dict:
    return ok(
        api.put(
            f"/api/v1/shops/{shop['id']}/products/{prod['id']}",
            token=keeper["token"],
            json={"reason": reason},
        )
    )


def share(api, keeper, shop, prod) -> dict:
    return ok(
        api.post(
            "/api/v1/shares",
            token=keeper["token"],
            json={"shop_id": shop["id"], "product_id": prod["id"]},
        ),
        201,
    )


ADDRESS = {"name": "王小明", "phone": "13700001111", "line": "上海市徐汇区漕溪北路 88 号"}


def checkout(api, buyer, items, share_code=None, shop_number=None) -> list[dict]:
    body = {"items": [{"product_id": p["id"], "quantity": q} for p, q in items], "address": ADDRESS}
    if share_code:
        body["share_code"] = share_code
    if shop_number:
        body["shop_number"] = shop_number
    return ok(api.post("/api/v1/orders", token=buyer["token"], json=body), 201)["orders"]


def pay_ship_confirm(api, buyer, orders, suppliers_by_id) -> None:
    for o in orders:
        assert (
            ok(api.post(f"/api/v1/orders/{o['id']}/pay", token=buyer["token"]))["status"] == "paid"
        )
        sup = suppliers_by_id[o["supplier_id"]]
        ok(
            api.post(
                f"/api/v1/orders/{o['id']}/ship",
                token=sup["token"],
                json={"carrier": "顺丰", "tracking_no": f"SF{o['id']}000"},
            )
        )
        assert (
            ok(api.post(f"/api/v1/orders/{o['id']}/confirm", token=buyer["token"]))["status"]
            == "received"
        )


def earnings(api, keeper, shop) -> dict:
    return ok(api.get(f"/api/v1/shops/{shop['id']}/earnings", token=keeper["token"]))


def settle(api, as_of: str) -> dict:
    return ok(api.post("/api/v1/admin/settlements/run", token=api.admin, json={"as_of": as_of}))


def payout_run(api) -> dict:
    return ok(api.post("/api/v1/admin/payouts/run", token=api.admin, json={}))


def set_clock(api, now: str | None) -> dict:
    return ok(api.post("/api/v1/admin/clock", token=api.admin, json={"now": now}))
