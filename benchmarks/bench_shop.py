"""Shop benchmark: the public shop view by shop number (店铺号) of a shop with 1,000 picked
products, through the gateway, against the bare gateway → RPC echo measured in the same run.

* ``public shop view, first page (100 of 1,000 picks)`` — ``GET /api/v1/shops/by-number/{n}``
  as a buyer opens it (default page of 100 available products plus the unavailable picks).
* ``public shop view, all 1,000 picks in one page`` — the same with ``?limit=1000``.

The member, the shop and its verification go through the gateway; the 1,000 catalog products
of the shop's read model and the 1,000 selections (~5% of them unavailable) are written
straight into the shop's PostgreSQL database for speed — the rows catalog events and picks
would have made. Seeded once per platform run.

Known floor effect (not the shop's): responses of roughly 16–60 KB (the 100-product page is
~33 KB) meet Nagle + delayed ACK on the gateway's eventlet WSGI socket and wait ~40 ms per
request; sequential p50 measured: 100-product page 52 ms, 1,000-product page 16 ms, shop RPC
alone 6 ms. Setting TCP_NODELAY on the gateway's listening socket removes it (1.2 ms vs 44 ms
for a 33 KB body in an eventlet.wsgi test) — requested from the gateway's owner.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import create_engine, text

PICKS = 1_000
CONCURRENCY = 10
DURATION = 5.0
_seeded: dict[str, str] = {}


def seed(ctx) -> str:
    """A verified shop with PICKS selections; returns its shop number."""
    url = ctx.db_urls["shop"]
    if url in _seeded:
        return _seeded[url]
    phone = "139" + f"{random.randint(0, 99_999_999):08d}"
    reg = requests.post(
        f"{ctx.url}/api/v1/members",
        timeout=30,
        json={
            "nickname": "压测掌柜",
            "phone": phone,
            "credit_score": 800,
            "real_name_verified": True,
        },
    )
    reg.raise_for_status()
    headers = {"Authorization": f"Bearer {reg.json()['token']}"}
    shop = requests.post(
        f"{ctx.url}/api/v1/shops", json={"name": "压测好物"}, headers=headers, timeout=30
    )
    shop.raise_for_status()
    shop = shop.json()
    requests.post(
        f"{ctx.url}/api/v1/shops/{shop['id']}/verification", headers=headers, timeout=30
    ).raise_for_status()
    rnd = random.Random(42)
    now = datetime.now(UTC)
    products, selections = [], []
    for n in range(PICKS):
        pid = 900_000 + n
        unavailable = n % 20 == 3
        products.append(
            {
                "pid": pid,
                "title": f"压测好物 #{n} 手工红糖 500g",
                "price": rnd.randint(500, 99_900),
                "bps": rnd.randint(500, 3000),
                "stock": 0 if unavailable else rnd.randint(1, 500),
                "available": not unavailable,
                "image": f"https://img.example/{n}.jpg",
                "at": now,
            }
        )
        selections.append(
            {
                "sid": shop["id"],
                "pid": pid,
                "reason": "自己用了三年，回购无数次。" if n % 3 else None,
                "at": now - timedelta(seconds=n),
            }
        )
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO catalog_products (product_id, supplier_id, title, category, "
                    "price_fen, commission_bps, stock, status, available, image_url, brand, "
                    "occurred_at) VALUES (:pid, 1, :title, 'food_health', :price, :bps, :stock, "
                    "'listed', :available, :image, NULL, :at)"
                ),
                products,
            )
            conn.execute(
                text(
                    "INSERT INTO selections (shop_id, product_id, reason, selected_at) "
                    "VALUES (:sid, :pid, :reason, :at)"
                ),
                selections,
            )
            conn.execute(
                text("UPDATE shops SET selection_count = :n WHERE id = :sid"),
                {"n": PICKS, "sid": shop["id"]},
            )
            conn.execute(text("ANALYZE catalog_products"))
            conn.execute(text("ANALYZE selections"))
    finally:
        engine.dispose()
    _seeded[url] = shop["shop_number"]
    return shop["shop_number"]


def rpc_figures(ctx, number: str) -> list[dict]:
    """The shop service alone: ``public_shop`` RPC vs the shop's ``echo`` RPC, one standalone
    proxy per load thread (a proxy is not thread-safe)."""
    from nameko.standalone.rpc import ClusterRpcProxy

    local, runners, lock = threading.local(), [], threading.Lock()

    def shop():
        proxy = getattr(local, "proxy", None)
        if proxy is None:
            runner = ClusterRpcProxy({"AMQP_URI": ctx.amqp_uri}, timeout=30)
            proxy = local.proxy = runner.start()
            with lock:
                runners.append(runner)
        return proxy.shop

    try:
        echo = ctx.load(lambda _s: shop().echo("ping") == "ping", CONCURRENCY, DURATION)
        view = ctx.load(
            lambda _s: len(shop().public_shop(number, 100)["products"]) == 100,
            CONCURRENCY,
            DURATION,
        )
    finally:
        for runner in runners:
            try:
                runner.stop()
            except Exception:
                pass
    return [
        ctx.figure(
            f"public_shop RPC, first page (100 of {PICKS:,} picks)",
            view,
            echo,
            floor_name="shop echo RPC",
        )
    ]


def run(ctx) -> list[dict]:
    number = seed(ctx)
    view = f"{ctx.url}/api/v1/shops/by-number/{number}"
    first = requests.get(view, timeout=10).json()
    unavailable = len(first["unavailable_products"])
    assert len(first["products"]) == 100 and unavailable == PICKS // 20, first.keys()

    def first_page(session):
        resp = session.get(view, timeout=10)
        return resp.status_code == 200 and len(resp.json()["products"]) == 100

    def whole_shop(session):
        resp = session.get(view, params={"limit": 1000}, timeout=30)
        return resp.status_code == 200 and len(resp.json()["products"]) == PICKS - unavailable

    figures = rpc_figures(ctx, number)
    floor = ctx.echo_floor(concurrency=CONCURRENCY, duration=DURATION)
    for name, fn in (
        (f"public shop view, first page (100 of {PICKS:,} picks) through the gateway", first_page),
        (f"public shop view, all {PICKS:,} picks in one page through the gateway", whole_shop),
    ):
        measured = ctx.load(fn, concurrency=CONCURRENCY, duration=DURATION)
        figures.append(ctx.figure(name, measured, floor))
    return figures
