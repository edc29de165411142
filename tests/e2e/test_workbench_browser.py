"""The keeper's and the supplier's day in a phone browser (issue 17): the keeper signs in, picks
a product with a reason, shares it (both posters, the copy, the code), a friend opens the link,
the visit shows in stats, a buyer orders through it and the order shows in today's numbers and
the earnings; the supplier signs in, ships a batch of orders and decides two refunds.

The browser runs in its own process (tests/e2e/browser_workbench.py, as browser_buyer.py);
this test seeds through the API and checks through the API what the browser did."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.story import (
    checkout,
    keeper_with_shop,
    member,
    ok,
    product,
    supplier,
    unique_phone,
)

DRIVER = Path(__file__).with_name("browser_workbench.py")
# long enough to fold (WeChat folds a post over 140 characters): the code goes to the comment
REASON = (
    "茶汤红亮，回甘很快，我自己回购了三次。"
    "第一次喝是朋友从临沧带回来的，一直念念不忘，后来找到这家茶园直接发货的，价格比店里实在。"
    "冲泡时用九十度左右的水，第一泡洗茶，第二泡开始香气就出来了，蜜香明显，放凉了也不苦不涩。"
    "家里老人孩子都爱喝，冬天暖胃，夏天做冷泡也很好喝，推荐给喜欢红茶的朋友试试。"
)


def browse(scenario: str, ctx: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, str(DRIVER), scenario, json.dumps(ctx, ensure_ascii=False)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert done.returncode == 0, (
        f"the browser failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def supplier_with_phone(api) -> tuple[dict, str]:
    """A qualified supplier whose contact phone is known (suppliers sign in with it)."""
    phone = unique_phone("136")
    sup = ok(
        api.post(
            "/api/v1/suppliers",
            json={
                "name": "山野茶园",
                "registered_capital_fen": 200_000_000,
                "general_taxpayer": True,
                "brand_authorization_levels": 1,
                "contact": {"phone": phone, "wechat": "shanye-tea"},
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
    return sup, phone


@pytest.fixture(scope="module")
def browser_ready():
    assert shutil.which("chromium") or Path("/usr/bin/chromium").exists(), (
        "Debian's chromium is needed: apt-get install chromium (.ci/run installs it)"
    )


def test_a_keeper_picks_shares_and_sees_the_visit_and_the_order(api, browser_ready):
    sup = supplier(api)
    product(api, sup, "山野蜂蜜 500g", 5_800, 1_000)  # a smaller commission, listed later
    tea = product(api, sup, "云南古树滇红茶 250g", 12_800, 2_000)
    keeper_phone = unique_phone("135")
    keeper = ok(
        api.post(
            "/api/v1/members",
            json={
                "nickname": "阿珍",
                "phone": keeper_phone,
                "credit_score": 760,
                "real_name_verified": True,
            },
        ),
        201,
    )
    shop = ok(api.post("/api/v1/shops", token=keeper["token"], json={"name": "阿珍的茶"}), 201)
    shop = ok(api.post(f"/api/v1/shops/{shop['id']}/verification", token=keeper["token"]))
    buyer = member(api)
    ctx = {
        "url": api.url,
        "admin": api.admin,
        "keeper_phone": keeper_phone,
        "shop": shop,
        "product": tea,
        "reason": REASON,
        "buyer_token": buyer["token"],
    }

    seen = browse("keeper", ctx)

    assert seen["shop_number_shown"]
    # sorted by what the keeper earns: the tea (20 %) above the honey (10 %)
    earns = seen["earn_fen_in_order"]
    assert len(earns) >= 2 and earns == sorted(earns, reverse=True)
    assert seen["earn_text"] == "你赚 ¥25.60"  # 20 % of ¥128 (a newcomer has no bonus)
    # picked with the reason
    detail = ok(api.get(f"/api/v1/shops/{shop['id']}", token=keeper["token"]))
    picked = {s["product_id"]: s for s in detail["selections"]}
    assert picked[tea["id"]]["reason"] == REASON
    # shared: both posters loaded as images, the copy and the code
    assert len(seen["posters"]) == 2 and all(p["w"] > 100 and p["h"] > 100 for p in seen["posters"])
    assert seen["code"] and seen["code"] in seen["copy_comment"]  # folded: the code is there
    assert seen["copy_text"] and seen["comment_visible"]
    assert seen["share_url"].endswith(seen["code"])
    assert seen["copied_note"] == "已复制"
    assert seen["friend_h1"] == tea["title"]
    # the friend's visit is in the stats and in the chart
    stats = ok(api.get(f"/api/v1/shops/{shop['id']}/stats", token=keeper["token"]))
    row = next(s for s in stats["by_share"] if s["code"] == seen["code"])
    assert row["visits"] >= 1
    assert seen["chart_visits"] >= 1
    assert seen["code"] in seen["share_chart_codes"]
    # the buyer's order shows in today's numbers and the earnings
    assert seen["today"]["orders"] == "1"
    assert seen["today"]["gmv"] == "¥128.00"
    assert seen["today"]["commission"] not in ("¥0.00", "–")
    assert f"订单 {seen['order_id']}" in seen["line_text"]
    order = ok(api.get(f"/api/v1/orders/{seen['order_id']}", token=buyer["token"]))
    assert order["shop_id"] == shop["id"] and order["status"] == "paid"
    earnings = ok(api.get(f"/api/v1/shops/{shop['id']}/earnings", token=keeper["token"]))
    assert seen["order_id"] in [line["order_id"] for line in earnings["lines"]]


def test_a_supplier_ships_a_batch_and_decides_refunds(api, browser_ready):
    sup, phone = supplier_with_phone(api)
    tea = product(api, sup, "云南古树滇红茶 250g", 12_800, 2_000)
    keeper, shop = keeper_with_shop(api, "茶香")
    buyer = member(api)
    placed = [
        checkout(api, buyer, [(tea, 1)], shop_number=shop["shop_number"])[0] for _ in range(4)
    ]
    for o in placed:
        assert (
            ok(api.post(f"/api/v1/orders/{o['id']}/pay", token=buyer["token"]))["status"] == "paid"
        )
    to_ship, refunded = [o["id"] for o in placed[:2]], [o["id"] for o in placed[2:]]
    refunds = []
    for oid in refunded:  # shipped already; the buyer asks for the money back
        ok(
            api.post(
                f"/api/v1/orders/{oid}/ship",
                token=sup["token"],
                json={"carrier": "中通", "tracking_no": f"ZT{oid}"},
            )
        )
        refunds.append(
            ok(
                api.post(
                    f"/api/v1/orders/{oid}/refunds",
                    token=buyer["token"],
                    json={"amount_fen": 12_800, "reason": "茶叶受潮结块"},
                ),
                201,
            )
        )
    ctx = {
        "url": api.url,
        "admin": api.admin,
        "supplier_phone": phone,
        "product": tea,
        "to_ship": to_ship,
        "approve": refunds[0]["id"],
        "reject": refunds[1]["id"],
    }

    seen = browse("supplier", ctx)

    assert seen["rows"] == 2
    assert seen["ship_note"] == "已发货 2 单"
    for i, oid in enumerate(to_ship):
        order = ok(api.get(f"/api/v1/orders/{oid}", token=sup["token"]))
        assert order["status"] == "shipped"
        assert (order["carrier"], order["tracking_no"]) == ("顺丰", f"SF10{i}{oid}")
    approved = ok(api.get(f"/api/v1/refunds/{refunds[0]['id']}", token=sup["token"]))
    rejected = ok(api.get(f"/api/v1/refunds/{refunds[1]['id']}", token=sup["token"]))
    assert (approved["status"], rejected["status"]) == ("approved", "rejected")
    product_now = ok(api.get(f"/api/v1/products/{tea['id']}"))
    assert product_now["stock"] == 321 and "库存 321" in seen["summary_after_save"]
    assert product_now["faq"] == [{"q": "保质期多久？", "a": "18 个月，阴凉干燥处保存。"}]
    assert product_now["specs"] == {"净含量": "250g", "产地": "云南临沧"}
