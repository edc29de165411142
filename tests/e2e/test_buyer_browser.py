"""A buyer on a phone-sized browser: from a share link to a paid order, and finding a shop by a
pasted message or a typed shop number (issue 14). The browser runs in its own process
(tests/e2e/browser_buyer.py: Playwright for Python on Debian's chromium at 390×844,
screenshots in var/artifacts/screenshots/); this test seeds through the API and checks, through
the API, what the browser did."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.story import keeper_with_shop, ok, pick, product, share, supplier, unique_phone

DRIVER = Path(__file__).with_name("browser_buyer.py")


@pytest.fixture(scope="module")
def seeded(api):
    assert shutil.which("chromium") or Path("/usr/bin/chromium").exists(), (
        "Debian's chromium is needed: apt-get install chromium (.ci/run installs it)"
    )
    sup = supplier(api)
    tea = product(api, sup, "云南古树滇红茶 250g", 12_800, 2_000)
    keeper, shop = keeper_with_shop(api, "茶香")
    pick(api, keeper, shop, tea, "茶汤红亮，回甘很快，我自己回购了三次")
    shared = share(api, keeper, shop, tea)
    return {"url": api.url, "admin": api.admin, "product": tea, "shop": shop, "share": shared}


def browse(scenario: str, ctx: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, str(DRIVER), scenario, json.dumps(ctx, ensure_ascii=False)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 0, (
        f"the browser failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_buyer_buys_from_a_share_link_and_pays_in_the_browser(api, seeded):
    buyer_phone = unique_phone("137")
    seen = browse("buy", {**seeded, "buyer_phone": buyer_phone})
    tea, shared = seeded["product"], seeded["share"]
    assert seen["h1"] == seen["og_title"] == tea["title"]
    assert "回购" in seen["og_description"]  # the keeper's reason is the card's text
    assert "产地直发" in seen["description"]  # the catalog's description
    assert seen["original_price"] == "¥138.00"  # the reference price, struck through
    assert seen["promise_visible"]
    assert seen["url_after_sign_in"] == shared["url"]  # signing in did not leave the share
    assert seen["address_phone"] == buyer_phone
    assert seen["status_text"].startswith("已付款")
    assert seen["listed"]

    order = ok(api.get(f"/api/v1/orders/{seen['order_id']}", token=seen["token"]))
    assert order["status"] == "paid"
    assert order["share_id"] == shared["id"]  # attributed to the share the journey began from
    assert order["shop_id"] == seeded["shop"]["id"]
    assert [(i["product_id"], i["quantity"]) for i in order["items"]] == [(tea["id"], 2)]
    assert order["paid_fen"] == 2 * tea["price_fen"]


def test_a_pasted_message_opens_the_product(seeded):
    seen = browse("paste", seeded)
    assert seen["url"].endswith("/s/" + seeded["share"]["code"])
    assert seen["h1"] == seeded["product"]["title"]


def test_a_typed_shop_number_opens_the_shop(seeded):
    seen = browse("shop_number", seeded)
    assert seen["h1"] == seeded["shop"]["display_name"]
    assert seen["badge"].startswith("新晋")
    assert "回购了三次" in seen["card"]
    assert seen["product_url"].endswith(f"/p/{seeded['product']['id']}")
    assert seen["buy_visible"]
