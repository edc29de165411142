"""The browser half of tests/e2e/test_workbench_browser.py, run as its own process (for the
reason given in tests/e2e/browser_buyer.py: Playwright's sync waits hang under eventlet):
``python tests/e2e/browser_workbench.py <scenario> <json>`` prints one JSON line with what it
saw. Debian's chromium at a 390×844 phone viewport; screenshots in var/artifacts/screenshots/.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_buyer import CHROMIUM, PHONE, SHOTS, TIMEOUT_MS, last_code  # noqa: E402


def shot(page, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")  # else the sticky bars are drawn mid-page
    page.screenshot(path=str(SHOTS / f"wb-{name}.png"), full_page=True)


def sign_in(page, ctx: dict, path: str, phone: str) -> None:
    page.goto(ctx["url"] + path)
    form = page.locator("#signin")
    form.wait_for(state="visible")
    form.locator("[name=phone]").fill(phone)
    form.locator("[data-action=send-code]").click()
    form.locator("[data-role=note]").wait_for(state="visible")
    form.locator("[name=code]").fill(last_code(ctx, phone))
    form.locator("[data-action=login]").click()
    page.wait_for_load_state("load")


def until(check, seconds: float = 30, every: float = 0.5):
    """Poll ``check`` until it returns something truthy (the platform buffers visits and
    applies events asynchronously); the last value, or an AssertionError naming the wait."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting after {seconds} s: {check.__doc__}")
        time.sleep(every)


def tab(page, name: str) -> None:
    page.click(f"[data-tab={name}]")
    page.locator(f"section#{name}").wait_for(state="visible")


def api(ctx: dict, method: str, path: str, token: str, **kw) -> dict:
    resp = requests.request(
        method, ctx["url"] + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw
    )
    assert resp.status_code < 300, f"{method} {path} → {resp.status_code}: {resp.text[:300]}"
    return resp.json() if resp.content else {}


def keeper(browser, ctx: dict) -> dict:
    context = new_context(browser)
    page = context.new_page()
    seen: dict = {}
    sign_in(page, ctx, "/keeper", ctx["keeper_phone"])
    page.locator("#keeper").wait_for(state="visible")
    seen["shop_number_shown"] = ctx["shop"]["shop_number"] in page.locator(".wb-head").inner_text()
    page.locator("[data-role=today-visits]").filter(has_text=re.compile(r"\d")).wait_for()
    shot(page, "k01-today")

    # the catalog: sorted by commission, "you earn", pick with a reason
    tab(page, "catalog")
    card = page.locator(f".product[data-product-id='{ctx['product']['id']}']")
    card.wait_for(state="visible")
    earn = page.locator(".product [data-role=earn]")
    seen["earn_fen_in_order"] = [
        int(x) for x in earn.evaluate_all("l => l.map(e => e.dataset.earnFen)")
    ]
    seen["earn_text"] = card.locator("[data-role=earn]").inner_text()
    card.locator("[data-action=pick-open]").click()
    wrap = page.locator(".product-wrap", has=card)
    wrap.locator("[name=reason]").fill(ctx["reason"])
    shot(page, "k02-pick")
    wrap.locator("[data-action=pick]").click()
    share_btn = card.locator("[data-action=share]")
    share_btn.wait_for(state="visible")

    # one tap: share — both posters, the copy, the code
    share_btn.click()
    sheet = page.locator("#share-sheet")
    sheet.locator("img[data-role=poster]").nth(1).wait_for(state="visible")
    page.wait_for_function(
        "() => { const i = [...document.querySelectorAll('#share-sheet img[data-role=poster]')];"
        " return i.length === 2 && i.every(x => x.complete && x.naturalWidth > 0); }"
    )
    seen["posters"] = sheet.locator("img[data-role=poster]").evaluate_all(
        "l => l.map(i => ({src: i.getAttribute('src'), w: i.naturalWidth, h: i.naturalHeight}))"
    )
    seen["code"] = sheet.locator("[data-role=share-code]").inner_text()
    seen["copy_text"] = sheet.locator("[name=copy_text]").input_value()
    seen["copy_comment"] = sheet.locator("[name=copy_comment]").input_value()
    seen["comment_visible"] = sheet.locator("[name=copy_comment]").is_visible()
    seen["share_url"] = sheet.locator("[name=url]").input_value()
    sheet.locator("[data-action=copy][data-copy=copy_text]").click()
    sheet.locator("[data-role=note]").filter(has_text="已复制").wait_for()
    seen["copied_note"] = sheet.locator("[data-role=note]").inner_text()
    shot(page, "k03-share")
    sheet.locator("[data-action=close]").click()

    # a friend opens the link in another browser
    friend = new_context(browser).new_page()
    friend.goto(seen["share_url"])
    seen["friend_h1"] = friend.locator("h1").inner_text()
    friend.context.close()

    # the visit shows in stats (visits are buffered by the gateway, then counted by share)
    tab(page, "stats")

    def visit_counted():
        """the share's row in the stats table shows a visit"""
        page.click("[data-action=refresh-stats]")
        page.wait_for_load_state("networkidle")
        row = page.locator("[data-role=by-share] tbody tr", has_text=seen["code"])
        return row.count() and int(row.locator("td").nth(1).inner_text()) >= 1

    until(visit_counted)
    page.locator("[data-chart=days] svg").wait_for()
    seen["chart_visits"] = page.locator("[data-chart=days] svg [data-value]").evaluate_all(
        "l => l.filter(r => r.dataset.series !== '订单').reduce((s, r) => s + +r.dataset.value, 0)"
    )
    seen["share_chart_codes"] = page.locator("[data-chart=shares] svg text").evaluate_all(
        "l => l.map(t => t.textContent)"  # SVG text has no innerText
    )
    shot(page, "k04-stats")

    # a buyer orders through the share and pays (over the API)
    body = {
        "items": [{"product_id": ctx["product"]["id"], "quantity": 1}],
        "share_code": seen["code"],
        "address": {"name": "王小明", "phone": "13700001111", "line": "上海市徐汇区漕溪北路 88 号"},
    }
    order = api(ctx, "POST", "/api/v1/orders", ctx["buyer_token"], json=body)["orders"][0]
    api(ctx, "POST", f"/api/v1/orders/{order['id']}/pay", ctx["buyer_token"])
    seen["order_id"] = order["id"]

    def order_today():
        """today's orders and the earnings show the paid order"""
        tab(page, "today")  # the tab is kept in the address (#today) across the reload
        page.reload()
        page.locator("[data-role=today-visits]").filter(has_text=re.compile(r"\d")).wait_for()
        orders = page.locator("[data-role=today-orders]").inner_text()
        line = page.locator(f"[data-role=lines] [data-order-id='{order['id']}']")
        return orders == "1" and line.count() == 1

    until(order_today)
    seen["today"] = {
        k: page.locator(f"[data-role=today-{k}]").inner_text()
        for k in ("visits", "orders", "gmv", "commission")
    }
    shot(page, "k05-today-after-order")
    tab(page, "money")
    seen["line_text"] = page.locator(
        f"[data-role=lines] [data-order-id='{order['id']}']"
    ).inner_text()
    seen["pending"] = page.locator("[data-role=pending]").inner_text()
    shot(page, "k06-money")
    tab(page, "questions")
    page.locator("[data-role=questions] p, [data-role=questions] .thread-card").first.wait_for()
    shot(page, "k07-questions")
    context.close()
    return seen


def supplier(browser, ctx: dict) -> dict:
    context = new_context(browser)
    page = context.new_page()
    seen: dict = {}
    sign_in(page, ctx, "/supplier", ctx["supplier_phone"])
    page.locator("#supplier").wait_for(state="visible")
    form = page.locator("form[data-form=ship]")
    for oid in ctx["to_ship"]:
        form.locator(f".ship-row[data-order-id='{oid}']").wait_for(state="visible")
    seen["rows"] = form.locator(".ship-row").count()
    form.locator("[data-role=carrier-all]").fill("顺丰")
    for i, oid in enumerate(ctx["to_ship"]):
        form.locator(f".ship-row[data-order-id='{oid}'] [name=tracking_no]").fill(f"SF10{i}{oid}")
    shot(page, "s01-ship")
    form.locator("[data-action=ship]").click()
    form.locator("[data-role=note]").filter(has_text="已发货").wait_for()
    seen["ship_note"] = form.locator("[data-role=note]").inner_text()
    form.locator(".ship-row").first.wait_for(state="detached")
    shot(page, "s02-shipped")

    tab(page, "refunds")
    box = page.locator("[data-role=refunds]")
    for rid in (ctx["approve"], ctx["reject"]):
        box.locator(f".refund-row[data-refund-id='{rid}']").wait_for(state="visible")
    seen["deadline_shown"] = box.locator("[data-role=decide-by]").count()
    shot(page, "s03-refunds")
    box.locator(f".refund-row[data-refund-id='{ctx['approve']}'] [data-action=approve]").click()
    box.locator(f".refund-row[data-refund-id='{ctx['approve']}']").wait_for(state="detached")
    box.locator(f".refund-row[data-refund-id='{ctx['reject']}'] [data-action=reject]").click()
    box.locator(f".refund-row[data-refund-id='{ctx['reject']}']").wait_for(state="detached")
    shot(page, "s04-refunds-decided")

    tab(page, "products")
    editor = page.locator(f".product-edit[data-product-id='{ctx['product']['id']}']")
    editor.wait_for(state="visible")
    editor.locator("summary").click()
    editor.locator("[name=stock]").fill("321")
    editor.locator("[data-action=save-product]").click()
    note = editor.locator("[data-role=note]")
    note.filter(has_text="已保存").wait_for()
    seen["summary_after_save"] = editor.locator("summary").inner_text()
    editor.locator(".faq-row [name=q]").first.fill("保质期多久？")
    editor.locator(".faq-row [name=a]").first.fill("18 个月，阴凉干燥处保存。")
    editor.locator("[name=specs]").fill("净含量：250g\n产地：云南临沧")
    page.evaluate("document.querySelector('.product-edit[open] [data-role=note]').hidden = true")
    editor.locator("[data-action=save-faq]").click()
    note.filter(has_text="已保存").wait_for()
    shot(page, "s05-product")
    tab(page, "balance")
    page.locator("[data-role=balance-note]").filter(has_text=re.compile(".")).wait_for()
    shot(page, "s06-balance")
    context.close()
    return seen


def new_context(browser):
    context = browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, locale="zh-CN"
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context


SCENARIOS = {"keeper": keeper, "supplier": supplier}


def main(argv: list[str]) -> int:
    scenario, ctx = SCENARIOS[argv[1]], json.loads(argv[2])
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            seen = scenario(browser, ctx)
        finally:
            browser.close()
    print(json.dumps(seen, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
