"""The whole product, end to end: separate processes, real RabbitMQ and PostgreSQL, HTTP only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.money import apply_bps
from shared.qr import decode_qr
from tests.e2e.story import (
    checkout,
    earnings,
    eventually,
    keeper_with_shop,
    member,
    ok,
    pay_ship_confirm,
    payout_run,
    pick,
    product,
    set_clock,
    settle,
    share,
    supplier,
)


def in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


@pytest.fixture
def clock_reset(api):
    yield
    set_clock(api, None)


def test_the_whole_journey_from_share_to_payout(api, tmp_path):
    tea_supplier, kettle_supplier = supplier(api), supplier(api)
    tea = product(api, tea_supplier, "云南古树滇红茶 250g", 12_800, 2_000)
    kettle = product(
        api, kettle_supplier, "恒温电热水壶 1.7L", 19_900, 1_500, category="home_appliances"
    )
    browse = ok(api.get("/api/v1/products", params={"q": "滇红"}))
    listed = {p["id"]: p for p in browse["items"]}
    assert listed[tea["id"]]["commission_fen"] == apply_bps(12_800, 2_000)

    keeper, shop = keeper_with_shop(api)
    assert len(shop["shop_number"]) == 6
    pick(api, keeper, shop, tea, "茶汤红亮，回甘很快")
    pick(api, keeper, shop, kettle, "烧水快还不吵")
    tea_share = share(api, keeper, shop, tea)
    assert tea_share["url"].endswith(tea_share["code"].strip("￥")) or "/s/" in tea_share["url"]

    # both posters decode, with an independent decoder (zxing-cpp), to the landing URL
    styles = set()
    for poster in tea_share["posters"]:
        resp = api.get(poster["url"].replace(api.url, ""))
        assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("image/")
        path = tmp_path / f"{poster['style']}.img"
        path.write_bytes(resp.content)
        assert decode_qr(path) == tea_share["qr_url"] == tea_share["url"] + "?src=qr"
        styles.add(poster["style"])
    assert len(styles) == 2

    # a buyer pastes the code among other text, opens the landing page, orders two products
    pasted = f"看看这个 {tea_share['code']} 超划算"
    resolved = ok(api.get("/api/v1/shares/resolve", params={"code": pasted}))
    assert (resolved["shop_number"], resolved["product_id"]) == (shop["shop_number"], tea["id"])
    landing = api.get(tea_share["url"].replace(api.url, ""))
    assert landing.status_code == 200 and "云南古树滇红茶" in landing.text

    buyer = member(api, credit=600, verified=False)
    orders = checkout(api, buyer, [(tea, 2), (kettle, 1)], share_code=pasted)
    assert len(orders) == 2
    assert {o["supplier_id"] for o in orders} == {tea_supplier["id"], kettle_supplier["id"]}
    for o in orders:
        assert (o["shop_id"], o["share_id"]) == (shop["id"], tea_share["id"])
    totals = {o["supplier_id"]: o["total_fen"] for o in orders}
    assert totals == {tea_supplier["id"]: 25_600, kettle_supplier["id"]: 19_900}

    # who do I ask: the keeper for the product, the right supplier for after-sales
    tea_order = next(o for o in orders if o["supplier_id"] == tea_supplier["id"])
    contacts = ok(api.get(f"/api/v1/orders/{tea_order['id']}/contacts", token=buyer["token"]))
    assert contacts["pre_sales"]["role"] == "keeper"
    assert contacts["after_sales"]["role"] == "supplier"
    assert (
        contacts["after_sales"]["phone"]
        == ok(api.get(f"/api/v1/suppliers/{tea_supplier['id']}", token=tea_supplier["token"]))[
            "contact"
        ]["phone"]
    )
    routed = ok(
        api.post(
            f"/api/v1/orders/{tea_order['id']}/inquiries",
            token=buyer["token"],
            json={"topic": "product", "text": "适合冷泡吗？"},
        ),
        201,
    )
    assert routed["routed_to"] == "keeper"
    routed = ok(
        api.post(
            f"/api/v1/orders/{tea_order['id']}/inquiries",
            token=buyer["token"],
            json={"topic": "shipping", "text": "什么时候发货？"},
        ),
        201,
    )
    assert routed["routed_to"] == "supplier"

    pay_ship_confirm(
        api,
        buyer,
        orders,
        {tea_supplier["id"]: tea_supplier, kettle_supplier["id"]: kettle_supplier},
    )
    expected = apply_bps(25_600, 2_000) + apply_bps(19_900, 1_500)
    mine = eventually(
        lambda: (lambda e: e if e["pending_fen"] == expected else None)(earnings(api, keeper, shop))
    )
    assert (mine["settleable_fen"], mine["paid_fen"]) == (0, 0)

    eventually(
        lambda: (
            settle(api, in_days(16)) and earnings(api, keeper, shop)["settleable_fen"] == expected
        )
    )
    run = payout_run(api)
    paid = [p for p in run["payouts"] if p["shop_id"] == shop["id"]]
    assert [p["amount_fen"] for p in paid] == [expected]
    again = payout_run(api)
    assert [p for p in again["payouts"] if p["shop_id"] == shop["id"]] == []
    final = earnings(api, keeper, shop)
    assert (final["pending_fen"], final["settleable_fen"], final["paid_fen"]) == (0, 0, expected)

    stats = ok(api.get(f"/api/v1/shops/{shop['id']}/stats", token=keeper["token"]))
    assert stats  # visits and orders are counted asynchronously; details in the share tests


def test_a_refund_after_payout_claws_back_from_the_next_run(api):
    sup = supplier(api)
    tea = product(api, sup, price_fen=10_000, commission_bps=2_000)
    keeper, shop = keeper_with_shop(api)
    pick(api, keeper, shop, tea)
    code = share(api, keeper, shop, tea)["code"]
    buyer = member(api)
    [first] = checkout(api, buyer, [(tea, 1)], share_code=code)
    pay_ship_confirm(api, buyer, [first], {sup["id"]: sup})
    eventually(lambda: earnings(api, keeper, shop)["pending_fen"] == 2_000)
    eventually(
        lambda: settle(api, in_days(16)) and earnings(api, keeper, shop)["settleable_fen"] == 2_000
    )
    assert [p["amount_fen"] for p in payout_run(api)["payouts"] if p["shop_id"] == shop["id"]] == [
        2_000
    ]

    # after the payout the buyer gets half the money back: the commission on it is clawed back
    refund = ok(
        api.post(
            f"/api/v1/orders/{first['id']}/refunds",
            token=buyer["token"],
            json={"amount_fen": 5_000, "reason": "少发了一盒"},
        ),
        201,
    )
    ok(api.post(f"/api/v1/refunds/{refund['id']}/approve", token=sup["token"]))
    eventually(lambda: earnings(api, keeper, shop)["settleable_fen"] == -1_000)

    # the next order's commission pays the clawback first
    [second] = checkout(api, buyer, [(tea, 2)], share_code=code)
    pay_ship_confirm(api, buyer, [second], {sup["id"]: sup})
    eventually(lambda: earnings(api, keeper, shop)["pending_fen"] == 4_000)
    eventually(
        lambda: settle(api, in_days(16)) and earnings(api, keeper, shop)["settleable_fen"] == 3_000
    )
    assert [p["amount_fen"] for p in payout_run(api)["payouts"] if p["shop_id"] == shop["id"]] == [
        3_000
    ]
    final = earnings(api, keeper, shop)
    assert final["paid_fen"] == 5_000 and final["settleable_fen"] == 0


def test_a_delisted_product_disappears_from_the_shop_and_its_landing_page(api):
    sup = supplier(api)
    tea = product(api, sup, "限量白茶饼")
    keeper, shop = keeper_with_shop(api)
    pick(api, keeper, shop, tea)
    sh = share(api, keeper, shop, tea)

    def shop_view():
        return ok(api.get(f"/api/v1/shops/by-number/{shop['shop_number']}"))

    def available_ids():
        return {
            p["product_id"] if "product_id" in p else p["id"]
            for p in shop_view()["products"]
            if p.get("available", True)
        }

    assert tea["id"] in eventually(available_ids)
    ok(api.post(f"/api/v1/products/{tea['id']}/delist", token=sup["token"]))
    eventually(lambda: tea["id"] not in available_ids(), timeout=10)
    page = eventually(
        lambda: (
            lambda r: (
                r if "不再" in r.text or "下架" in r.text or "no longer" in r.text.lower() else None
            )
        )(api.get(sh["url"].replace(api.url, ""))),
        timeout=10,
    )
    assert shop["shop_number"] in page.text


def test_a_level_recalculation_changes_the_bonus_on_the_next_order(api, clock_reset):
    sup = supplier(api)
    tea = product(api, sup, price_fen=50_000, commission_bps=1_000, stock=1_000)
    keeper, shop = keeper_with_shop(api)
    pick(api, keeper, shop, tea)
    code = share(api, keeper, shop, tea)["code"]
    buyer = member(api)

    set_clock(api, "2027-03-05T10:00:00Z")
    [big] = checkout(api, buyer, [(tea, 20)], share_code=code)  # ¥10,000 of sales in March
    pay_ship_confirm(api, buyer, [big], {sup["id"]: sup})
    eventually(lambda: earnings(api, keeper, shop)["pending_fen"] == 100_000)
    set_clock(api, "2027-03-25T10:00:00Z")
    eventually(
        lambda: (
            settle(api, "2027-03-25T10:00:00Z")
            and earnings(api, keeper, shop)["settleable_fen"] == 100_000
        )
    )

    set_clock(api, "2027-04-01T08:00:00Z")
    first = ok(
        api.post("/api/v1/admin/levels/recalculate", token=api.admin, json={"month": "2027-03"})
    )
    change = next(c for c in first["changes"] if c["shop_id"] == shop["id"])
    assert change["old_level"] != change["new_level"] and change["bonus_bps"] > 0
    second = ok(
        api.post("/api/v1/admin/levels/recalculate", token=api.admin, json={"month": "2027-03"})
    )
    assert [c for c in second["changes"] if c["shop_id"] == shop["id"]] in ([], [change])

    # the next order earns the product rate plus the new level's bonus
    bonus = change["bonus_bps"]
    eventually(
        lambda: (
            ok(api.get(f"/api/v1/shops/by-number/{shop['shop_number']}"))["level"]
            == change["new_level"]
        )
    )
    [small] = checkout(api, buyer, [(tea, 1)], share_code=code)
    ok(api.post(f"/api/v1/orders/{small['id']}/pay", token=buyer["token"]))
    line = eventually(
        lambda: next(
            (ln for ln in earnings(api, keeper, shop)["lines"] if ln["order_id"] == small["id"]),
            None,
        )
    )
    assert line["commission_fen"] == apply_bps(50_000, 1_000 + bonus)


def test_contacts_and_inquiries_reach_the_right_party(api):
    sup = supplier(api)
    tea = product(api, sup)
    keeper, shop = keeper_with_shop(api)
    pick(api, keeper, shop, tea)
    buyer = member(api)
    [order] = checkout(api, buyer, [(tea, 1)], shop_number=shop["shop_number"])
    assert order["shop_id"] == shop["id"]
    ok(api.post(f"/api/v1/orders/{order['id']}/pay", token=buyer["token"]))

    for who in (buyer, keeper):
        contacts = ok(api.get(f"/api/v1/orders/{order['id']}/contacts", token=who["token"]))
        assert contacts["pre_sales"]["role"] == "keeper"
        assert contacts["after_sales"]["role"] == "supplier"
        assert contacts["product_facts"]
    route = {}
    for topic in ("product", "shipping", "refund"):
        route[topic] = ok(
            api.post(
                f"/api/v1/orders/{order['id']}/inquiries",
                token=buyer["token"],
                json={"topic": topic, "text": f"关于{topic}的问题"},
            ),
            201,
        )["routed_to"]
    assert route == {"product": "keeper", "shipping": "supplier", "refund": "supplier"}
    keeper_inbox = ok(api.get("/api/v1/inquiries", token=keeper["token"]))["items"]
    supplier_inbox = ok(api.get("/api/v1/inquiries", token=sup["token"]))["items"]
    assert {i["topic"] for i in keeper_inbox if i["order_id"] == order["id"]} == {"product"}
    assert {i["topic"] for i in supplier_inbox if i["order_id"] == order["id"]} == {
        "shipping",
        "refund",
    }


def test_parties_only_see_and_touch_their_own(api):
    sup_a, sup_b = supplier(api), supplier(api)
    tea_b = product(api, sup_b)
    keeper_a, shop_a = keeper_with_shop(api, "甲")
    keeper_b, shop_b = keeper_with_shop(api, "乙")
    buyer = member(api)
    [order] = checkout(api, buyer, [(tea_b, 1)], shop_number=shop_b["shop_number"])
    ok(api.post(f"/api/v1/orders/{order['id']}/pay", token=buyer["token"]))

    # someone else's shop or order answers exactly what a missing one answers (404, never 403)
    assert (
        api.get(f"/api/v1/shops/{shop_b['id']}/earnings", token=keeper_a["token"]).status_code
        == 404
    )
    assert (
        api.get(f"/api/v1/shops/{shop_b['id']}/stats", token=keeper_a["token"]).status_code == 404
    )
    resp = api.post(
        f"/api/v1/orders/{order['id']}/ship",
        token=sup_a["token"],
        json={"carrier": "顺丰", "tracking_no": "SF1"},
    )
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "order_not_found"
    assert (
        api.put(
            f"/api/v1/shops/{shop_b['id']}/products/{tea_b['id']}", token=keeper_a["token"], json={}
        ).status_code
        == 404
    )
    assert api.get(f"/api/v1/orders/{order['id']}", token=keeper_a["token"]).status_code == 404
    assert (
        api.post(
            "/api/v1/shares", json={"shop_id": shop_b["id"], "product_id": tea_b["id"]}
        ).status_code
        == 401
    )
    # the keeper of the shop sees the order, but not the buyer's full phone number
    seen = ok(api.get(f"/api/v1/orders/{order['id']}", token=keeper_b["token"]))
    assert "13700001111" not in str(seen)
