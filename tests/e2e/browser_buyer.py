"""The browser half of tests/e2e/test_buyer_browser.py, run as its own process:
``python tests/e2e/browser_buyer.py <scenario> <json>`` prints one JSON line with what it saw.

Why a separate process: the test process is eventlet-monkey-patched (root conftest.py), and
Playwright's sync API waits (``wait_for_url``) never time out or return under the patched
selectors; a plain interpreter drives the browser reliably. Playwright for Python drives
Debian's chromium (never a downloaded build) at a 390×844 phone viewport and saves screenshots
to var/artifacts/screenshots/.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "var" / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 20_000


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def last_code(ctx: dict, phone: str) -> str:
    resp = requests.get(
        ctx["url"] + "/api/v1/admin/sandbox/messages",
        params={"to": phone},
        headers={"Authorization": f"Bearer {ctx['admin']}"},
        timeout=10,
    )
    resp.raise_for_status()
    items = resp.json()["items"]
    assert items, f"no message was sent to {phone}"
    return re.search(r"\d{6}", items[0]["text"]).group(0)


def buy(page, ctx: dict) -> dict:
    shared, tea = ctx["share"], ctx["product"]
    page.goto(shared["url"])
    seen = {
        "h1": page.locator("h1").inner_text(),
        "og_title": page.locator("meta[property='og:title']").get_attribute("content"),
        "og_description": page.locator("meta[property='og:description']").get_attribute("content"),
        "description": page.locator(".desc").inner_text(),
        "original_price": page.locator("del.original").inner_text(),
        "promise_visible": page.locator(".promise").is_visible(),
    }
    shot(page, "01-landing")
    page.click("[data-action=more]")  # quantity 2
    page.click("[data-action=buy]")
    signin = page.locator("#signin")
    signin.wait_for(state="visible")
    signin.locator("[name=phone]").fill(ctx["buyer_phone"])
    signin.locator("[name=nickname]").fill("小明")
    signin.locator("[data-action=send-code]").click()
    signin.locator("[data-role=note]").wait_for(state="visible")
    signin.locator("[name=code]").fill(last_code(ctx, ctx["buyer_phone"]))
    shot(page, "02-sign-in")
    signin.locator("[data-action=login]").click()
    address = page.locator("#address")
    address.wait_for(state="visible")
    seen["url_after_sign_in"] = page.url
    seen["address_phone"] = address.locator("[name=phone]").input_value()
    address.locator("[name=name]").fill("王小明")
    address.locator("[name=line]").fill("上海市徐汇区漕溪北路 88 号")
    shot(page, "03-address")
    address.locator("[data-action=place-order]").click()
    pay = page.locator("[data-step=pay] [data-action=pay]")
    pay.wait_for(state="visible")
    shot(page, "04-pay")
    pay.click()
    page.wait_for_url(re.compile(r"/my/orders/\d+$"))
    seen["order_id"] = int(page.url.rsplit("/", 1)[1])
    seen["status_text"] = page.locator("[data-role=status]").inner_text()
    seen["title"] = tea["title"]
    shot(page, "05-order")
    seen["token"] = page.evaluate("localStorage.getItem('xp_token')")
    page.goto(ctx["url"] + "/my/orders")
    seen["listed"] = page.locator(f"[data-order-id='{seen['order_id']}']").is_visible()
    shot(page, "06-my-orders")
    return seen


def paste(page, ctx: dict) -> dict:
    page.goto(ctx["url"] + "/")
    shot(page, "07-home")
    message = f"朋友推荐：{ctx['share']['copy_text']} 快看看"
    page.locator("form[data-form=resolve] [name=code]").fill(message)
    page.click("[data-action=open-code]")
    page.wait_for_url(re.compile(r"/s/[A-Za-z0-9]+$"))
    return {"url": page.url, "h1": page.locator("h1").inner_text()}


def shop_number(page, ctx: dict) -> dict:
    shop = ctx["shop"]
    page.goto(ctx["url"] + "/")
    page.locator("form[data-form=shop-number] [name=shop_number]").fill(shop["shop_number"])
    page.click("[data-action=open-shop]")
    page.wait_for_url(re.compile(r"/shop/\d{6}$"))
    card = page.locator(f".product[data-product-id='{ctx['product']['id']}']")
    seen = {
        "url": page.url,
        "h1": page.locator("h1").inner_text(),
        "badge": page.locator(".badge").inner_text(),
        "card": card.inner_text(),
    }
    shot(page, "08-shop")
    card.click()
    page.wait_for_url(re.compile(r"/shop/\d{6}/p/\d+$"))
    seen["product_url"] = page.url
    seen["buy_visible"] = page.locator("[data-action=buy]").is_visible()
    shot(page, "09-shop-product")
    return seen


SCENARIOS = {"buy": buy, "paste": paste, "shop_number": shop_number}


def main(argv: list[str]) -> int:
    scenario, ctx = SCENARIOS[argv[1]], json.loads(argv[2])
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = browser.new_context(
                viewport=PHONE,
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
                locale="zh-CN",
            )
            context.set_default_timeout(TIMEOUT_MS)
            seen = scenario(context.new_page(), ctx)
        finally:
            browser.close()
    print(json.dumps(seen, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
