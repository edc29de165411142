"""The keeper's workbench API through the real gateway (issue 17): "you earn ¥x" with the level
bonus on browse, and the level with its thresholds and progress."""

import itertools

import requests

_phones = itertools.count(13900007000)


def _supplier_with_product(gateway, **over):
    s = requests.post(
        f"{gateway.url}/api/v1/suppliers",
        json={
            "name": "Tea Co.",
            "registered_capital_fen": 200_000_000,
            "general_taxpayer": True,
            "contact": {"phone": "13800000000"},
            "brand_authorization_levels": 1,
        },
        timeout=10,
    ).json()
    auth = {"Authorization": f"Bearer {s['token']}"}
    requests.post(
        f"{gateway.url}/api/v1/suppliers/{s['id']}/deposit",
        json={"amount_fen": 1_000_000},
        headers=auth,
        timeout=10,
    )
    body = {
        "title": "Longjing",
        "category": "food_health",
        "price_fen": 9900,
        "stock": 10,
        "commission_bps": 1500,
        "market_commission_bps": 1200,
        "reference_price_fen": 12900,
        **over,
    }
    p = requests.post(f"{gateway.url}/api/v1/products", json=body, headers=auth, timeout=10)
    assert p.status_code == 201, p.text
    return p.json()


def _member(gateway, with_shop: bool):
    member = requests.post(
        f"{gateway.url}/api/v1/members",
        json={
            "nickname": "阿花",
            "phone": str(next(_phones)),
            "credit_score": 750,
            "real_name_verified": True,
        },
        timeout=10,
    )
    assert member.status_code == 201, member.text
    headers = {"Authorization": f"Bearer {member.json()['token']}"}
    shop_id = None
    if with_shop:
        shop = requests.post(
            f"{gateway.url}/api/v1/shops", json={"name": "阿花的店"}, headers=headers, timeout=10
        )
        assert shop.status_code == 201, shop.text
        shop_id = shop.json()["id"]
    return headers, shop_id


def test_a_signed_in_keeper_sees_what_they_earn_including_the_level_bonus(gateway, start_service):
    start_service("catalog")
    # the newcomer level carries a bonus here, so the bonus shows without a month of sales
    start_service("shop", RULES={"level_bonus_bps_newcomer": 250})
    product = _supplier_with_product(gateway)
    keeper, _ = _member(gateway, with_shop=True)
    member, _ = _member(gateway, with_shop=False)

    seen = requests.get(f"{gateway.url}/api/v1/products", headers=keeper, timeout=10).json()
    item = next(i for i in seen["items"] if i["id"] == product["id"])
    assert item["commission_fen"] == 1485  # 9900 × 15 %
    assert item["keeper_earn_fen"] == 1733  # 9900 × (15 % + 2.5 %) = 1732.5, half up

    for headers in ({}, member):  # anonymous, or a member without a shop: no keeper figure
        page = requests.get(f"{gateway.url}/api/v1/products", headers=headers, timeout=10).json()
        assert all("keeper_earn_fen" not in i for i in page["items"]), page


def test_a_keeper_sees_the_level_thresholds_and_the_progress_to_the_next(gateway, start_service):
    start_service("shop")
    start_service("payouts")
    keeper, shop_id = _member(gateway, with_shop=True)
    other, other_shop = _member(gateway, with_shop=True)

    resp = requests.get(f"{gateway.url}/api/v1/shops/{shop_id}/level", headers=keeper, timeout=10)
    assert resp.status_code == 200, resp.text
    level = resp.json()
    assert level["level"] == "newcomer" and level["bonus_bps"] == 0
    assert level["month_sales_fen"] == 0
    assert level["thresholds"] == [
        {"level": "newcomer", "min_sales_fen": 0, "bonus_bps": 0},
        {"level": "senior", "min_sales_fen": 100_000, "bonus_bps": 50},
        {"level": "elite", "min_sales_fen": 1_000_000, "bonus_bps": 100},
        {"level": "super", "min_sales_fen": 5_000_000, "bonus_bps": 200},
    ]
    assert level["next"] == {"level": "senior", "min_sales_fen": 100_000, "remaining_fen": 100_000}

    foreign = requests.get(
        f"{gateway.url}/api/v1/shops/{other_shop}/level", headers=keeper, timeout=10
    )
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "shop_not_found"
    admin = requests.get(
        f"{gateway.url}/api/v1/shops/{other_shop}/level", headers=gateway.headers("admin")
    )
    assert admin.status_code == 200, admin.text
    doc = requests.get(f"{gateway.url}/api/v1/openapi.json", timeout=10).json()
    assert "get" in doc["paths"]["/api/v1/shops/{shop_id}/level"]
