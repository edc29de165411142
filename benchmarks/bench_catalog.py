"""Catalog benchmark: browsing 10,000 products through the gateway and batch ``get_products``
over RPC, each against a bare round trip measured in the same run.

* ``browse …`` — ``GET /api/v1/products`` (first page, a category page reached by cursor, a
  text search) vs ``GET /api/v1/echo`` (gateway → catalog ``echo`` RPC → back).
* ``get_products(50 ids) over RPC`` — what orders/shop call per checkout or shop page, vs the
  catalog's ``echo`` RPC from the same kind of client.

The 10,000 products (5 categories, ~5% sold out, ~5% delisted) are written straight into the
catalog's PostgreSQL database for speed, after one supplier registered and paid its deposit
through the gateway; they are seeded once per platform run.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime

import requests
from sqlalchemy import create_engine, func, insert, select, text

PRODUCTS = 10_000
CONCURRENCY = 10
DURATION = 5.0
CATEGORIES = ("food_health", "beauty_care", "baby_toys", "home_appliances", "apparel_sports")
WORDS = (
    "tea",
    "silk",
    "bamboo",
    "cotton",
    "porcelain",
    "jade",
    "honey",
    "walnut",
    "ginseng",
    "lotus",
    "panda",
    "dragon",
    "plum",
    "orchid",
    "cloud",
)
_seeded: dict[str, list[int]] = {}


def seed(ctx) -> list[int]:
    """One active supplier and PRODUCTS products; returns the ids of the available ones."""
    url = ctx.db_urls["catalog"]
    if url in _seeded:
        return _seeded[url]
    from catalog.models import Product

    reg = requests.post(
        f"{ctx.url}/api/v1/suppliers",
        timeout=30,
        json={
            "name": "Bench Supplier",
            "registered_capital_fen": 500_000_000,
            "general_taxpayer": True,
            "contact": {"phone": "13900000000"},
            "brand_authorization_levels": 1,
        },
    ).json()
    requests.post(
        f"{ctx.url}/api/v1/suppliers/{reg['id']}/deposit",
        timeout=30,
        json={"amount_fen": 1_000_000},
        headers={"Authorization": f"Bearer {reg['token']}"},
    ).raise_for_status()
    rnd = random.Random(42)
    now = datetime.now(UTC)
    rows = []
    for n in range(PRODUCTS):
        price = rnd.randint(500, 99_900)
        comm = rnd.randint(500, 3000)
        rows.append(
            {
                "supplier_id": reg["id"],
                "title": f"{rnd.choice(WORDS)} {rnd.choice(WORDS)} #{n}",
                "category": CATEGORIES[n % len(CATEGORIES)],
                "description": "benchmark product " * 5,
                "brand": rnd.choice(WORDS).title(),
                "price_fen": price,
                "stock": 0 if n % 20 == 7 else rnd.randint(1, 500),
                "commission_bps": comm,
                "market_commission_bps": comm - 100,
                "reference_price_fen": price + 1000,
                "image_url": f"https://img.example/{n}.jpg",
                "image_ref": None,
                "status": "delisted" if n % 20 == 11 else "listed",
                "supplier_active": True,
                "created_at": now,
                "updated_at": now,
            }
        )
    engine = create_engine(url)
    with engine.begin() as conn:
        for i in range(0, len(rows), 1000):
            conn.execute(insert(Product.__table__), rows[i : i + 1000])
        conn.execute(text("ANALYZE products"))
        t = Product.__table__
        ids = list(
            conn.execute(select(t.c.id).where(t.c.status == "listed", t.c.stock > 0)).scalars()
        )
        assert conn.execute(select(func.count()).select_from(t)).scalar_one() >= PRODUCTS
    engine.dispose()
    _seeded[url] = ids
    return ids


class ThreadProxies:
    """One nameko standalone RPC proxy per load thread (a proxy is not thread-safe)."""

    def __init__(self, amqp_uri: str):
        self.config = {"AMQP_URI": amqp_uri}
        self.local = threading.local()
        self.all = []
        self.lock = threading.Lock()

    def catalog(self):
        proxy = getattr(self.local, "proxy", None)
        if proxy is None:
            from nameko.standalone.rpc import ClusterRpcProxy

            runner = ClusterRpcProxy(self.config, timeout=30)
            proxy = self.local.proxy = runner.start()
            with self.lock:
                self.all.append(runner)
        return proxy.catalog

    def close(self):
        for runner in self.all:
            try:
                runner.stop()
            except Exception:
                pass


def run(ctx) -> list[dict]:
    ids = seed(ctx)
    rnd = random.Random(7)
    figures = []

    # --- over RPC: batch get_products(50) vs echo ----------------------------------------------
    proxies = ThreadProxies(ctx.amqp_uri)
    try:

        def echo(_session):
            return proxies.catalog().echo("ping") == "ping"

        def batch(_session):
            wanted = rnd.sample(ids, 50)
            return len(proxies.catalog().get_products(wanted)) == 50

        echo(None)
        rpc_floor = ctx.load(echo, concurrency=CONCURRENCY, duration=DURATION)
        measured = ctx.load(batch, concurrency=CONCURRENCY, duration=DURATION)
        figures.append(
            ctx.figure(
                "get_products(50 ids) over RPC",
                measured,
                rpc_floor,
                floor_name="catalog echo RPC",
                goal="≥ 0.5× echo RPC",
            )
        )
    finally:
        proxies.close()

    # --- through the gateway: browse vs GET /api/v1/echo ----------------------------------------
    floor = ctx.echo_floor(concurrency=CONCURRENCY, duration=DURATION)
    base = f"{ctx.url}/api/v1/products"
    first = requests.get(f"{base}?category=baby_toys&limit=20", timeout=10).json()
    cursor = first["next_cursor"]

    def browse_first(session):
        resp = session.get(f"{base}?limit=20", timeout=10)
        return resp.status_code == 200 and len(resp.json()["items"]) == 20

    def browse_category_page2(session):
        resp = session.get(f"{base}?category=baby_toys&limit=20&cursor={cursor}", timeout=10)
        return resp.status_code == 200 and len(resp.json()["items"]) == 20

    def browse_search(session):
        resp = session.get(f"{base}?q={rnd.choice(WORDS)}&limit=20", timeout=10)
        return resp.status_code == 200 and resp.json()["items"]

    for name, fn in (
        ("browse first page (20 of 10,000) through the gateway", browse_first),
        ("browse a category page by cursor through the gateway", browse_category_page2),
        ("browse with a text search through the gateway", browse_search),
    ):
        measured = ctx.load(fn, concurrency=CONCURRENCY, duration=DURATION)
        figures.append(ctx.figure(name, measured, floor, goal="≥ 0.5× echo"))
    return figures
