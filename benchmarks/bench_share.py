"""Share benchmark: poster rendering in-process, landing page and code resolution through the
gateway, each against a floor measured in the same run.

* ``poster render <style> …`` — ``PosterRenderer.render`` of a 750×1334 poster over a
  photo-like product image (gradients, shapes, noise; JPEG-decoded like a catalog image), vs the
  floor: Pillow's bare JPEG encode of a same-size photo-like image (same quality). Two cases per
  style: *re-render* (the price changed: QR code and fitted photo come from the renderer's
  caches) and *cold* (a new share and a new photo: QR code and photo fit computed too).
* ``cached poster`` — what the share service does for a poster it has already rendered
  (hash of everything drawn + in-memory cache hit), vs the same encode floor; plus the same
  request through the gateway (RPC + bytes) for transparency.
* ``landing page`` / ``resolve pasted code`` — GET /s/<code> and GET /api/v1/shares/resolve
  at 50 concurrent clients vs the bare gateway → RPC echo (GET /api/v1/echo) at 50.

The platform part needs a real share: a supplier with a product (photo uploaded), a member with
an active shop that selected it — created through the gateway's public API.
"""

from __future__ import annotations

import base64
import io
import random
import secrets
import time

import requests
from PIL import Image, ImageDraw, ImageFilter

from benchmarks.common import percentile, timed

CONCURRENCY = 50
DURATION = 5.0
REPEAT = 60


def photo_like(size=(1200, 1200), seed=7) -> Image.Image:
    """A product-photo stand-in: a lit gradient backdrop, soft shapes, sensor noise."""
    rnd = random.Random(seed)
    w, h = size
    grad = Image.linear_gradient("L").resize(size)
    base = Image.merge(
        "RGB",
        (
            grad.point(lambda v: 120 + v // 2),
            grad.rotate(90).resize(size).point(lambda v: 90 + v // 3),
            grad.point(lambda v: 200 - v // 3),
        ),
    )
    draw = ImageDraw.Draw(base)
    for _ in range(12):
        x, y, r = rnd.randint(0, w), rnd.randint(0, h), rnd.randint(60, 300)
        draw.ellipse(
            (x - r, y - r, x + r, y + r),
            fill=(rnd.randint(0, 255), rnd.randint(0, 255), rnd.randint(0, 255)),
        )
    base = base.filter(ImageFilter.GaussianBlur(12))
    noise = Image.effect_noise(size, 18).convert("RGB")
    return Image.blend(base, noise, 0.12)


def jpeg_bytes(img: Image.Image, quality=85) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _latency_figure(name, measured, floor, goal=None):
    value, floor_value = measured["p50_ms"], floor["p50_ms"]
    out = {
        "name": name,
        "value": round(value, 2),
        "unit": "ms (p50)",
        "p50_ms": round(value, 3),
        "p99_ms": round(measured["p99_ms"], 3),
        "floor_name": "Pillow bare JPEG encode 750×1334",
        "floor_value": round(floor_value, 2),
        "ratio": round(value / floor_value, 3) if floor_value else None,
    }
    if goal:
        out["goal"] = goal
    return out


def poster_figures() -> list[dict]:
    from share import domain
    from share.posters import JPEG_QUALITY, PosterRenderer, decode_photo, find_cjk_font

    font, why = find_cjk_font()
    if not font:
        return [{"name": "poster render", "value": None, "unit": "ms", "error": why}]
    photo = decode_photo(jpeg_bytes(photo_like()))
    floor_img = photo_like(domain.POSTER_SIZE, seed=3)
    floor = timed(lambda: jpeg_bytes(floor_img, JPEG_QUALITY), REPEAT)
    renderer = PosterRenderer(font)
    drawn = {
        "title": "云南高山有机红茶 特级滇红古树茶叶礼盒装 500克（送礼佳品）",
        "price_fen": 3990,
        "shop_name": "阿花小铺",
        "reason": "我自己喝了三年，回甘很好！冲泡五次以上依然有味道，推荐给每天坐办公室的朋友。",
        "url": "http://127.0.0.1:8000/s/7KX9M2PQ4RTW",
    }
    figures = []
    for style in domain.POSTER_STYLES:
        renderer.render(style, drawn, photo, "warm")  # fonts loaded, pieces cached
        price = iter(range(1000, 10**6))
        rerender = timed(
            lambda style=style, price=price: renderer.render(
                style, {**drawn, "price_fen": next(price)}, photo, "warm"
            ),
            REPEAT,
        )
        figures.append(
            _latency_figure(
                f"poster re-render ({style}, price changed)", rerender, floor, goal="p50 ≤ 25 ms"
            )
        )
        n = iter(range(10**6))

        def cold(style=style, n=n):
            i = next(n)
            renderer.render(
                style,
                {**drawn, "url": f"http://127.0.0.1:8000/s/C{i:011d}"},
                photo,
                f"cold-{style}-{i}",
            )

        figures.append(
            _latency_figure(
                f"poster cold render ({style}, new share + photo fit)",
                timed(cold, REPEAT // 2),
                floor,
                goal="p50 ≤ 25 ms",
            )
        )
    cache = {}
    for style in domain.POSTER_STYLES:
        key = domain.poster_key(style, drawn)
        cache[key] = ("image/jpeg", renderer.render(style, drawn, photo, "warm"))

    def cached_hit():
        key = domain.poster_key("classic", drawn)
        assert cache[key][1]

    figures.append(
        _latency_figure(
            "cached poster (hash of drawn facts + cache hit, in-process)",
            timed(cached_hit, 2000),
            floor,
            goal="≤ 2 ms",
        )
    )
    return figures


# --- through the platform ------------------------------------------------------------------
_shares: dict[str, dict] = {}


def make_share(ctx) -> dict:
    url = ctx.url
    if url in _shares:
        return _shares[url]
    sup = requests.post(
        f"{url}/api/v1/suppliers",
        timeout=30,
        json={
            "name": "Share Bench Supplier",
            "registered_capital_fen": 500_000_000,
            "general_taxpayer": True,
            "contact": {"phone": "13900000001"},
            "brand_authorization_levels": 1,
        },
    )
    sup.raise_for_status()
    sup = sup.json()
    sh = {"Authorization": f"Bearer {sup['token']}"}
    requests.post(
        f"{url}/api/v1/suppliers/{sup['id']}/deposit",
        json={"amount_fen": 1_000_000},
        headers=sh,
        timeout=30,
    ).raise_for_status()
    image = base64.b64encode(jpeg_bytes(photo_like((1000, 1000)))).decode()
    prod = requests.post(
        f"{url}/api/v1/products",
        headers=sh,
        timeout=60,
        json={
            "title": "云南高山有机红茶 特级滇红 500克",
            "category": "food_health",
            "price_fen": 3990,
            "stock": 1000,
            "commission_bps": 1500,
            "market_commission_bps": 1000,
            "reference_price_fen": 4990,
            "brand": "滇红",
            "image_base64": image,
        },
    )
    prod.raise_for_status()
    product_id = prod.json()["id"]
    member = requests.post(
        f"{url}/api/v1/members",
        timeout=30,
        json={
            "nickname": "阿花",
            "phone": f"139{secrets.randbelow(10**8):08d}",
            "credit_score": 760,
            "real_name_verified": True,
        },
    )
    member.raise_for_status()
    mh = {"Authorization": f"Bearer {member.json()['token']}"}
    shop = requests.post(f"{url}/api/v1/shops", json={"name": "阿花茶"}, headers=mh, timeout=30)
    shop.raise_for_status()
    shop_id = shop.json()["id"]
    requests.post(
        f"{url}/api/v1/shops/{shop_id}/verification", headers=mh, timeout=30
    ).raise_for_status()
    requests.put(
        f"{url}/api/v1/shops/{shop_id}/products/{product_id}",
        headers=mh,
        timeout=30,
        json={"reason": "我自己喝了三年，回甘很好！"},
    ).raise_for_status()
    deadline = time.monotonic() + 30
    while True:  # the product's availability may reach shop by event
        share = requests.post(
            f"{url}/api/v1/shares",
            headers=mh,
            timeout=30,
            json={"shop_id": shop_id, "product_id": product_id},
        )
        if share.status_code == 201 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    share.raise_for_status()
    _shares[url] = share.json()
    return _shares[url]


def platform_figures(ctx) -> list[dict]:
    try:
        share = make_share(ctx)
    except Exception as exc:  # another service is not ready: say so instead of crashing
        return [
            {
                "name": "landing page through the gateway",
                "value": None,
                "unit": "req/s",
                "error": f"could not create a share through the API: {exc}",
            }
        ]
    figures = []
    poster_url = share["posters"][0]["url"]
    first = requests.get(poster_url, timeout=60)
    etag = first.headers.get("ETag")
    samples = []
    for _ in range(40):
        t0 = time.perf_counter()
        ok = requests.get(poster_url, timeout=30).status_code == 200
        samples.append((time.perf_counter() - t0) * 1000)
        assert ok
    hit = {"p50_ms": percentile(samples, 50), "p99_ms": percentile(samples, 99)}
    samples = []
    for _ in range(40):
        t0 = time.perf_counter()
        requests.get(poster_url, headers={"If-None-Match": etag}, timeout=30)
        samples.append((time.perf_counter() - t0) * 1000)
    not_modified = {"p50_ms": percentile(samples, 50), "p99_ms": percentile(samples, 99)}
    echo_samples = []
    for _ in range(40):
        t0 = time.perf_counter()
        requests.get(f"{ctx.url}/api/v1/echo", timeout=30)
        echo_samples.append((time.perf_counter() - t0) * 1000)
    echo1 = {"p50_ms": percentile(echo_samples, 50), "p99_ms": percentile(echo_samples, 99)}
    for name, measured in (
        ("cached poster through the gateway (bytes)", hit),
        ("cached poster through the gateway (ETag → 304)", not_modified),
    ):
        figures.append(
            {
                "name": name,
                "value": round(measured["p50_ms"], 2),
                "unit": "ms (p50)",
                "p50_ms": round(measured["p50_ms"], 2),
                "p99_ms": round(measured["p99_ms"], 2),
                "floor_name": "gateway→RPC echo, 1 client (ms p50)",
                "floor_value": round(echo1["p50_ms"], 2),
                "ratio": round(measured["p50_ms"] / echo1["p50_ms"], 3),
            }
        )

    echo = ctx.echo_floor(concurrency=CONCURRENCY, duration=DURATION)
    landing_url = share["url"]

    def landing(session):
        return session.get(landing_url, timeout=10).status_code == 200

    figures.append(
        ctx.figure(
            f"landing page /s/<code> ({CONCURRENCY} clients)",
            ctx.load(landing, concurrency=CONCURRENCY, duration=DURATION),
            echo,
            goal="≥ 1.0× echo",
        )
    )
    pasted = f"看看这个 ￥{share['code']}￥ 超划算"
    resolve_url = f"{ctx.url}/api/v1/shares/resolve"

    def resolve(session):
        return session.get(resolve_url, params={"code": pasted}, timeout=10).status_code == 200

    figures.append(
        ctx.figure(
            f"resolve pasted code ({CONCURRENCY} clients)",
            ctx.load(resolve, concurrency=CONCURRENCY, duration=DURATION),
            echo,
        )
    )
    return figures


def run(ctx) -> list[dict]:
    return poster_figures() + platform_figures(ctx)


if __name__ == "__main__":  # the in-process part alone: python benchmarks/bench_share.py
    import json
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(root), str(root / "services" / "share")]
    print(json.dumps(poster_figures(), ensure_ascii=False, indent=1))
