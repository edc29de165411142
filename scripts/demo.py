"""``make demo``: the whole Xiaopu story against a running platform (``make run`` first).

Seeds a catalog (suppliers across the five categories, products with Chinese titles and
generated product photos), a keeper with a verified shop, selections with reasons and shares;
then walks one buyer through it: open the share, order, pay, ship, confirm, settle, pay out.
Prints each step, the shop number, the share code, the landing URL and where the posters were
written, and ends with a summary table. Every run makes its own suppliers, keeper and buyer
(tagged with the run), so running it twice works.

It finds the gateway where ``make run`` put it: ``GATEWAY_PORT`` (and ``GATEWAY_HOST``), or a
whole ``XIAOPU_URL`` for a gateway elsewhere; the admin token from ``XIAOPU_ADMIN_TOKEN`` or
``var/admin.token``. When only the posters are degraded (no CJK font) the story runs without
them. Poster QR codes are read back with zxing-cpp (shared/qr.py).

    make demo                       # the platform of `make run`, default port 8000
    GATEWAY_PORT=8001 make demo     # the one started with GATEWAY_PORT=8001 make run
"""

from __future__ import annotations

import base64
import io
import itertools
import math
import os
import random
import secrets
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.qr import decode_qr  # noqa: E402


def gateway_url(env=os.environ) -> str:
    """XIAOPU_URL when given, else the gateway ``make run`` starts: GATEWAY_HOST:GATEWAY_PORT."""
    if env.get("XIAOPU_URL"):
        return env["XIAOPU_URL"].rstrip("/")
    host = env.get("GATEWAY_HOST") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):  # listening everywhere: talk to it locally
        host = "127.0.0.1"
    return f"http://{host}:{env.get('GATEWAY_PORT') or '8000'}"


def blocking_problems(health: dict) -> tuple[list[str], str | None]:
    """(what stops the demo, what degrades only posters) from the gateway's health answer.
    Share reports a missing poster font as ``posters: "degraded: ..."`` beside status ok
    (older share services: ``poster_font: "MISSING: ..."`` with status degraded)."""
    blocking, posters = [], None
    for name, status in (health.get("services") or {}).items():
        detail = (health.get("detail") or {}).get(name) or {}
        if name == "share":
            font = str(detail.get("posters") or detail.get("poster_font") or "")
            if font.startswith(("degraded", "MISSING")):
                posters = font
                if status != "ok" and detail.get("db") == "ok":
                    continue  # degraded for the font alone
        if status != "ok":
            blocking.append(f"{name}: {status}")
    if not health.get("services"):
        blocking.append(f"no service answered: {health}")
    return blocking, posters


URL = gateway_url()
OUT = ROOT / "var" / "demo"

CATALOG = [
    (
        "food_health",
        "山野食品",
        [("云南古树滇红茶 250g 礼盒装", 12800, 2000, "茶汤红亮，回甘很快，送长辈很体面。")],
    ),
    (
        "beauty_care",
        "水光实验室",
        [("玻尿酸补水面膜 10片", 8900, 2500, "敷完第二天上妆不卡粉，干皮亲测。")],
    ),
    (
        "baby_toys",
        "童趣工坊",
        [("榉木早教积木 100粒", 15900, 1800, "边角都打磨过，宝宝啃也放心。")],
    ),
    (
        "home_appliances",
        "小暖家电",
        [("恒温电热水壶 1.7L", 19900, 1500, "304 内胆，烧水快还不吵。")],
    ),
    (
        "apparel_sports",
        "跑者装备",
        [("速干运动T恤 男女同款", 6900, 2200, "夏天跑步一身干爽，洗了不变形。")],
    ),
]


# --- output helpers -----------------------------------------------------------------------------
def step(text: str) -> None:
    print(f"\n▶ {text}", flush=True)


def info(text: str) -> None:
    print(f"  {text}", flush=True)


class Progress:
    """A spinner for anything that may take more than a second."""

    def __init__(self, label: str):
        self.label = label
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def _spin(self):
        started = time.monotonic()
        for ch in itertools.cycle("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"):
            if self._stop.wait(0.1):
                break
            if sys.stdout.isatty():
                print(
                    f"\r  {ch} {self.label} ({time.monotonic() - started:.1f}s)", end="", flush=True
                )
        if sys.stdout.isatty():
            print("\r" + " " * (len(self.label) + 20) + "\r", end="", flush=True)

    def __enter__(self):
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        info(f"{self.label}: done in {time.monotonic() - self._started:.1f}s")


# --- HTTP ---------------------------------------------------------------------------------------
class Client:
    def __init__(self, base: str, admin_token: str):
        self.base = base
        self.admin = admin_token
        self.http = requests.Session()

    def call(
        self, method: str, path: str, token: str | None = None, expect=(200, 201, 204), **kwargs
    ):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        resp = self.http.request(method, self.base + path, headers=headers, timeout=30, **kwargs)
        if resp.status_code not in expect:
            raise SystemExit(f"{method} {path} → {resp.status_code}: {resp.text[:500]}")
        if resp.headers.get("Content-Type", "").startswith("application/json"):
            return resp.json()
        return resp

    def wait_for(self, what: str, fn, timeout: float = 30.0):
        with Progress(what):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                value = fn()
                if value:
                    return value
                time.sleep(0.3)
        raise SystemExit(f"timed out waiting for: {what}")


# --- generated product photos -------------------------------------------------------------------
def product_photo(seed: int, title: str) -> bytes:
    """A photo-like studio shot: soft gradient backdrop, shadow, and a product shape."""
    from PIL import Image, ImageDraw, ImageFilter

    rnd = random.Random(seed)
    w = h = 800
    base = [rnd.randint(150, 235) for _ in range(3)]
    accent = tuple(rnd.randint(30, 200) for _ in range(3))
    img = Image.new("RGB", (w, h))
    px = img.load()
    for y in range(h):
        for x in range(0, w):
            d = math.hypot(x - w * 0.5, y - h * 0.35) / (w * 0.8)
            px[x, y] = tuple(int(c * (1.05 - 0.45 * d)) for c in base)
    draw = ImageDraw.Draw(img)
    shadow = Image.new("L", (w, h), 0)
    ImageDraw.Draw(shadow).ellipse((200, 610, 600, 680), fill=120)
    img.paste((40, 40, 40), mask=shadow.filter(ImageFilter.GaussianBlur(18)))
    kind = seed % 3
    if kind == 0:  # a box
        draw.rounded_rectangle((230, 220, 570, 640), 24, fill=accent)
        draw.rectangle((230, 330, 570, 420), fill=tuple(min(255, c + 60) for c in accent))
    elif kind == 1:  # a bottle
        draw.rounded_rectangle((330, 160, 470, 240), 16, fill=tuple(c // 2 for c in accent))
        draw.rounded_rectangle((260, 230, 540, 640), 60, fill=accent)
        draw.rectangle((260, 380, 540, 470), fill=(245, 245, 240))
    else:  # a folded garment / soft goods
        draw.polygon(
            [
                (200, 280),
                (320, 200),
                (480, 200),
                (600, 280),
                (560, 360),
                (520, 340),
                (520, 640),
                (280, 640),
                (280, 340),
                (240, 360),
            ],
            fill=accent,
        )
    highlight = Image.new("L", (w, h), 0)
    ImageDraw.Draw(highlight).ellipse((280, 240, 380, 520), fill=70)
    img.paste((255, 255, 255), mask=highlight.filter(ImageFilter.GaussianBlur(30)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=88)
    return buf.getvalue()


# --- the story ----------------------------------------------------------------------------------
def main() -> int:
    admin = os.environ.get("XIAOPU_ADMIN_TOKEN") or (
        (ROOT / "var" / "admin.token").read_text().strip()
        if (ROOT / "var" / "admin.token").exists()
        else ""
    )
    if not admin:
        raise SystemExit(
            "no admin token: set XIAOPU_ADMIN_TOKEN or start the platform with "
            "`make run` (it writes var/admin.token)"
        )
    api = Client(URL, admin)
    try:
        health = requests.get(f"{URL}/api/v1/health", timeout=10).json()
    except (requests.RequestException, ValueError):
        raise SystemExit(
            f"no Xiaopu gateway answers at {URL}: start it with `make run` "
            "(and give `make demo` the same GATEWAY_PORT, or XIAOPU_URL)"
        ) from None
    blocking, posters_degraded = blocking_problems(health)
    if blocking:
        raise SystemExit(f"the platform is not healthy: {', '.join(blocking)}")
    run = secrets.token_hex(2)
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"Xiaopu demo (run {run}) against {URL}")
    if posters_degraded:
        print(f"  note: posters are skipped: {posters_degraded}")

    step("Suppliers register, qualify and pay their deposit")
    products = []
    suppliers = []
    for i, (category, brand, items) in enumerate(CATALOG):
        sup = api.call(
            "POST",
            "/api/v1/suppliers",
            json={
                "name": f"{brand}供应链有限公司-{run}",
                "registered_capital_fen": 500_000_000,
                "general_taxpayer": True,
                "brand_authorization_levels": 1,
                "contact": {
                    "phone": f"1380000{random.randint(1000, 9999)}",
                    "wechat": f"{brand}-service",
                    "email": f"service{i}@example.com",
                },
            },
        )
        dep = api.call(
            "POST",
            f"/api/v1/suppliers/{sup['id']}/deposit",
            token=sup["token"],
            json={"amount_fen": 1_000_000},
        )
        suppliers.append(sup)
        info(f"{brand}: supplier #{sup['id']} {sup['status']} → {dep['status']}")
        for j, (title, price, bps, reason) in enumerate(items):
            photo = base64.b64encode(product_photo(i * 10 + j, title)).decode()
            product = api.call(
                "POST",
                "/api/v1/products",
                token=sup["token"],
                json={
                    "title": title,
                    "category": category,
                    "price_fen": price,
                    "stock": 200,
                    "commission_bps": bps,
                    "market_commission_bps": bps - 500,
                    "reference_price_fen": price + 2000,
                    "brand": brand,
                    "description": f"{title}。{brand}官方授权，正品保障，7天无理由退换。",
                    "image_base64": photo,
                },
            )
            products.append((product, reason, sup))
            info(
                f"  listed #{product['id']} {title}  ¥{price / 100:.2f}  commission "
                f"{bps / 100:.0f}% = ¥{product['commission_fen'] / 100:.2f}"
            )

    step("A keeper (掌柜) opens a shop and verifies it")
    keeper = api.call(
        "POST",
        "/api/v1/members",
        json={
            "nickname": f"小美-{run}",
            "phone": f"139{random.randint(10_000_000, 99_999_999)}",
            "credit_score": 760,
            "real_name_verified": True,
        },
    )
    shop = api.call(
        "POST",
        "/api/v1/shops",
        token=keeper["token"],
        json={"name": f"小美的好物{run}", "description": "只推荐自己用过的好东西"},
    )
    shop = api.call("POST", f"/api/v1/shops/{shop['id']}/verification", token=keeper["token"])
    info(
        f"shop #{shop['id']} “{shop['display_name']}”  shop number (店铺号) {shop['shop_number']}"
        f"  status {shop['status']}  level {shop['level']}"
    )

    step("The keeper picks products with a recommendation reason and shares them")
    shares = []
    for product, reason, _sup in products:
        api.call(
            "PUT",
            f"/api/v1/shops/{shop['id']}/products/{product['id']}",
            token=keeper["token"],
            json={"reason": reason},
        )
    for product, _reason, sup in products[:2]:
        share = api.call(
            "POST",
            "/api/v1/shares",
            token=keeper["token"],
            json={"shop_id": shop["id"], "product_id": product["id"]},
        )
        shares.append((share, product, sup))
        info(f"{product['title']}: share code (口令) {share['code']}  landing {share['url']}")
    share, product, sup = shares[0]
    info(f"copy text: {share['copy_text']}")
    if share.get("copy_comment"):
        info(f"first comment: {share['copy_comment']}")
    posters: list[Path] = []
    if posters_degraded:
        info(f"posters skipped: {posters_degraded}")
    else:
        with Progress("rendering both poster styles"):
            for poster in share["posters"]:
                url = poster["url"]
                resp = api.call("GET", url.replace(URL, "") if url.startswith(URL) else url)
                ext = "png" if resp.headers.get("Content-Type", "").endswith("png") else "jpg"
                path = OUT / f"poster-{run}-{poster['style']}.{ext}"
                path.write_bytes(resp.content)
                posters.append(path)
    for path in posters:
        decoded = decode_qr(path)
        check = (
            "QR decodes to the landing URL (?src=qr: counted as a scan)"
            if decoded == share.get("qr_url", share["url"])
            else f"QR decodes to {decoded!r}"
            if decoded
            else "no QR code found in it"
        )
        info(f"poster written: {path}  ({check})")

    step("A buyer pastes the share code and orders")
    buyer = api.call(
        "POST",
        "/api/v1/members",
        json={
            "nickname": f"买家-{run}",
            "phone": f"137{random.randint(10_000_000, 99_999_999)}",
            "credit_score": 650,
            "real_name_verified": False,
        },
    )
    pasted = f"【{product['title']}】复制这段话 {share['code']} 打开小铺 超划算"
    resolved = api.call("GET", "/api/v1/shares/resolve", params={"code": pasted})
    info(f"pasted “{pasted}” → shop {resolved['shop_number']}, product #{resolved['product_id']}")
    landing = api.call("GET", share["url"].replace(URL, ""))
    info(f"landing page: {landing.status_code}, {len(landing.content)} bytes of HTML")
    second = shares[1][1]
    checkout = api.call(
        "POST",
        "/api/v1/orders",
        token=buyer["token"],
        json={
            "items": [
                {"product_id": product["id"], "quantity": 2},
                {"product_id": second["id"], "quantity": 1},
            ],
            "share_code": pasted,
            "address": {
                "name": "王小明",
                "phone": "13700001111",
                "line": "上海市徐汇区漕溪北路 88 号",
            },
        },
    )
    orders = checkout["orders"]
    for o in orders:
        info(
            f"order #{o['id']} to supplier #{o['supplier_id']}: ¥{o['total_fen'] / 100:.2f}, "
            f"attributed to shop #{o['shop_id']} via share {o['share_id']}"
        )

    step("The buyer pays (sandbox provider, signed callback)")
    for o in orders:
        paid = api.call("POST", f"/api/v1/orders/{o['id']}/pay", token=buyer["token"])
        info(f"order #{o['id']}: {paid['status']}")

    step("Who do I ask? (the keeper's headline question)")
    contacts = api.call("GET", f"/api/v1/orders/{orders[0]['id']}/contacts", token=buyer["token"])
    pre, after = contacts["pre_sales"], contacts["after_sales"]
    info(f"product questions → keeper: {pre.get('display_name') or pre.get('nickname')}")
    info(
        f"shipping & after-sales → supplier: {after.get('name')} tel {after.get('phone')}"
        f" wechat {after.get('wechat')}"
    )
    inquiry = api.call(
        "POST",
        f"/api/v1/orders/{orders[0]['id']}/inquiries",
        token=buyer["token"],
        json={"topic": "product", "text": "这个茶适合冷泡吗？"},
    )
    info(f"a product question is routed to the {inquiry['routed_to']}")

    step("Suppliers ship, the buyer confirms receipt")
    by_supplier = {s["id"]: s for _, _, s in products}
    for o in orders:
        token = by_supplier[o["supplier_id"]]["token"]
        api.call(
            "POST",
            f"/api/v1/orders/{o['id']}/ship",
            token=token,
            json={"carrier": "顺丰速运", "tracking_no": f"SF{random.randint(10**11, 10**12)}"},
        )
        done = api.call("POST", f"/api/v1/orders/{o['id']}/confirm", token=buyer["token"])
        info(f"order #{o['id']}: shipped, {done['status']}")

    earnings = api.wait_for(
        "commission accrued in the ledger",
        lambda: (lambda e: e if e["pending_fen"] > 0 else None)(
            api.call("GET", f"/api/v1/shops/{shop['id']}/earnings", token=keeper["token"])
        ),
    )
    info(f"pending commission ¥{earnings['pending_fen'] / 100:.2f}")

    step("The after-sales window closes: settle, then pay out")
    as_of = (datetime.now(UTC) + timedelta(days=16)).isoformat()
    settled = api.wait_for(
        "settlement (receipts must reach the ledger first)",
        lambda: (lambda r: r if r.get("count", len(r.get("settled", []))) else None)(
            api.call("POST", "/api/v1/admin/settlements/run", token=admin, json={"as_of": as_of})
        ),
    )
    info(
        f"settled {settled.get('count', len(settled.get('settled', [])))} commission(s), "
        f"¥{settled.get('total_fen', 0) / 100:.2f}"
    )
    payout = api.call("POST", "/api/v1/admin/payouts/run", token=admin, json={})
    mine = [p for p in payout["payouts"] if p.get("shop_id") == shop["id"]]
    paid_now = ", ".join(f"¥{p['amount_fen'] / 100:.2f} {p.get('status', '')}" for p in mine)
    info(
        f"payout run #{payout['run_id']}: {len(payout['payouts'])} payout(s), "
        f"¥{payout['total_fen'] / 100:.2f} in total; this keeper: {paid_now}"
    )
    again = api.call("POST", "/api/v1/admin/payouts/run", token=admin, json={})
    twice = sum(p["amount_fen"] for p in again["payouts"] if p.get("shop_id") == shop["id"])
    info(f"running it again pays ¥{twice / 100:.2f} more to this keeper")
    earnings = api.call("GET", f"/api/v1/shops/{shop['id']}/earnings", token=keeper["token"])
    stats = api.call("GET", f"/api/v1/shops/{shop['id']}/stats", token=keeper["token"])

    step("Summary")
    gmv = sum(o["total_fen"] for o in orders)
    rows = [
        ("shop", f"{shop['display_name']} (店铺号 {shop['shop_number']})"),
        ("share code", share["code"]),
        ("landing URL", share["url"]),
        ("posters", ", ".join(str(p) for p in posters) or f"skipped ({posters_degraded})"),
        ("orders", str(len(orders))),
        ("GMV", f"¥{gmv / 100:.2f}"),
        (
            "commission earned",
            "¥%.2f"
            % ((earnings["pending_fen"] + earnings["settleable_fen"] + earnings["paid_fen"]) / 100),
        ),
        ("paid out", f"¥{earnings['paid_fen'] / 100:.2f}"),
        ("visits counted", str(stats.get("visits", stats.get("totals", {}).get("visits", "?")))),
    ]
    width = max(len(k) for k, _ in rows)
    print("  " + "-" * (width + 50))
    for k, v in rows:
        print(f"  {k.ljust(width)}  {v}")
    print("  " + "-" * (width + 50))
    return 0


if __name__ == "__main__":
    sys.exit(main())
