"""Sharing through the gateway with the real share service (shop and catalog are fakes)."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from nameko.standalone.rpc import ClusterRpcProxy

from conftest import FAKE, add_product, add_shop, select
from share.domain import extract_codes
from shared.errors import ValidationFailed
from shared.qr import decode_qr
from shared.testing import wait_for

KEEPER = 12


def a_shared_product(platform, shop_id=7, product_id=101, **product):
    add_shop(shop_id, KEEPER)
    add_product(product_id, **product)
    select(shop_id, product_id)
    resp = requests.post(
        f"{platform.url}/api/v1/shares",
        json={"shop_id": shop_id, "product_id": product_id},
        headers=platform.gateway.headers("member", KEEPER),
        timeout=20,
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def stats(platform, shop_id=7):
    resp = requests.get(
        f"{platform.url}/api/v1/shops/{shop_id}/stats",
        headers=platform.gateway.headers("member", KEEPER),
        timeout=20,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_every_poster_decodes_with_zxing_to_the_share_landing_url(platform, tmp_path):
    share = a_shared_product(platform)
    assert share["url"] == f"{platform.url}/s/{share['code']}"
    assert sorted(p["style"] for p in share["posters"]) == ["card", "classic"]
    for poster in share["posters"]:
        resp = requests.get(poster["url"], timeout=60)
        assert resp.status_code == 200, resp.text
        assert resp.headers["Content-Type"] in ("image/jpeg", "image/png")
        assert resp.headers["ETag"]
        path = tmp_path / f"{poster['style']}.jpg"
        path.write_bytes(resp.content)
        assert decode_qr(path) == share["url"] + "?src=qr", poster["style"]  # counted as a scan
        again = requests.get(
            poster["url"], headers={"If-None-Match": resp.headers["ETag"]}, timeout=30
        )
        assert again.status_code == 304


def test_a_product_without_a_photo_gets_a_placeholder_poster_that_still_scans(platform, tmp_path):
    share = a_shared_product(platform, with_image=False)
    resp = requests.get(share["posters"][0]["url"], timeout=60)
    path = tmp_path / "p.jpg"
    path.write_bytes(resp.content)
    assert decode_qr(path) == share["url"] + "?src=qr"


def test_an_unchanged_share_is_rendered_once_and_a_price_change_renders_a_new_poster(platform):
    share = a_shared_product(platform)
    url = share["posters"][0]["url"]
    first = requests.get(url, timeout=60)
    second = requests.get(url, timeout=60)
    assert first.headers["ETag"] == second.headers["ETag"] and first.content == second.content
    FAKE["products"][101]["price_fen"] = 2990
    platform.dispatch(
        "catalog",
        "product_changed",
        {
            "product_id": 101,
            "supplier_id": 1,
            "title": FAKE["products"][101]["title"],
            "category": "食品保健",
            "price_fen": 2990,
            "commission_bps": 1000,
            "stock": 100,
            "status": "listed",
            "available": True,
        },
    )
    changed = wait_for(
        lambda: (r := requests.get(url, timeout=60)).headers["ETag"] != first.headers["ETag"] and r
    )
    assert changed.content != first.content


def test_the_same_shop_and_product_give_the_same_share_unless_fresh(platform):
    share = a_shared_product(platform)
    headers = platform.gateway.headers("member", KEEPER)
    again = requests.post(
        f"{platform.url}/api/v1/shares",
        json={"shop_id": 7, "product_id": 101},
        headers=headers,
        timeout=20,
    ).json()
    assert again["id"] == share["id"] and again["code"] == share["code"]
    fresh = requests.post(
        f"{platform.url}/api/v1/shares",
        json={"shop_id": 7, "product_id": 101, "fresh": True},
        headers=headers,
        timeout=20,
    ).json()
    assert fresh["id"] != share["id"] and fresh["code"] != share["code"]


def test_only_the_keeper_of_an_active_shop_shares_a_selected_available_product(platform):
    add_shop(7, KEEPER)
    add_shop(8, KEEPER, status="pending_verification")
    add_product(101)
    add_product(102, available=False)
    add_product(103)
    select(7, 101)
    select(7, 102)
    select(8, 101)

    def post(shop_id, product_id, member=KEEPER):
        return requests.post(
            f"{platform.url}/api/v1/shares",
            json={"shop_id": shop_id, "product_id": product_id},
            headers=platform.gateway.headers("member", member),
            timeout=20,
        )

    theirs = post(7, 101, member=99)  # another keeper's shop: the shop service's own 404
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "shop_not_found"
    assert theirs.content.replace(b"7", b"N") == post(404, 101).content.replace(b"404", b"N")
    assert post(8, 101).status_code == 409
    assert post(7, 103).status_code == 422  # not selected
    assert post(7, 102).status_code == 409  # selected but unavailable
    assert post(404, 101).status_code == 404
    assert (
        requests.post(
            f"{platform.url}/api/v1/shares",
            json={"shop_id": 7},
            headers=platform.gateway.headers("member", KEEPER),
            timeout=20,
        ).status_code
        == 422
    )
    assert (
        requests.post(
            f"{platform.url}/api/v1/shares", json={"shop_id": 7, "product_id": 101}, timeout=20
        ).status_code
        == 401
    )


def test_a_300_character_copy_is_split_into_post_and_comment_with_the_code(platform):
    add_shop(7, KEEPER)
    add_product(101)
    select(7, 101, reason=("这款茶我自己喝了三年，回甘很好，冲泡五次以上依然有味道。" * 12)[:280])
    resp = requests.post(
        f"{platform.url}/api/v1/shares",
        json={"shop_id": 7, "product_id": 101},
        headers=platform.gateway.headers("member", KEEPER),
        timeout=20,
    )
    share = resp.json()
    assert len(share["copy_text"]) + len(share["copy_comment"]) >= 300
    assert len(share["copy_text"]) <= 140
    assert share["code"] not in share["copy_text"]
    assert f"￥{share['code']}￥" in share["copy_comment"]


def test_a_pasted_message_resolves_to_the_share(platform):
    share = a_shared_product(platform)
    pasted = f"看看这个 ￥{share['code']}￥ 超划算"
    resp = requests.get(
        f"{platform.url}/api/v1/shares/resolve", params={"code": pasted}, timeout=20
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["share_id"] == share["id"] and body["product_id"] == 101
    assert body["shop_number"] == "100007"
    assert "xp_vid" in resp.cookies
    full_width = (
        share["code"].lower().translate({ord(c): ord(c) + 0xFEE0 for c in share["code"].lower()})
    )
    resp = requests.get(
        f"{platform.url}/api/v1/shares/resolve",
        params={"code": f"复制＄{full_width}＄打开"},
        timeout=20,
    )
    assert resp.json()["share_id"] == share["id"]
    copy = share["copy_text"] + share["copy_comment"]
    assert (
        requests.get(
            f"{platform.url}/api/v1/shares/resolve", params={"code": copy}, timeout=20
        ).json()["share_id"]
        == share["id"]
    )
    missing = requests.get(
        f"{platform.url}/api/v1/shares/resolve",
        params={"code": "看看这个 ￥ABCDEFGHJKMN￥ 超划算"},
        timeout=20,
    )
    assert missing.status_code == 404
    assert (
        requests.get(
            f"{platform.url}/api/v1/shares/resolve", params={"code": "没有口令"}, timeout=20
        ).status_code
        == 404
    )


def test_the_landing_page_shows_the_product_and_a_buy_button_with_the_share_code(platform):
    share = a_shared_product(platform, title="<script>alert(1)</script>红茶")
    resp = requests.get(share["url"], timeout=20)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    page = resp.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;红茶" in page and "<script>alert" not in page
    assert "¥39.90" in page and "阿花小铺" in page and "回甘很好" in page
    assert f'data-share-code="{share["code"]}"' in page
    assert resp.cookies.get("xp_vid")
    image = requests.get(f"{platform.url}/api/v1/shares/{share['id']}/image", timeout=30)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg"
    assert requests.get(f"{platform.url}/s/ABCDEFGHJKMN", timeout=20).status_code == 404


def test_a_delisted_product_shows_a_no_longer_available_page_linking_the_shop(platform):
    share = a_shared_product(platform)
    FAKE["products"][101].update(available=False, status="delisted")
    platform.dispatch(
        "catalog",
        "product_delisted",
        {
            "product_id": 101,
            "supplier_id": 1,
            "title": "红茶",
            "category": "食品保健",
            "price_fen": 3990,
            "commission_bps": 1000,
            "stock": 100,
            "status": "delisted",
            "available": False,
        },
    )
    page = wait_for(
        lambda: (
            (r := requests.get(share["url"], timeout=20)).status_code == 200
            and "已下架" in r.text
            and r.text
        )
    )
    assert 'href="/shop/100007"' in page
    assert "立即购买" not in page


def test_1000_landing_visits_from_distinct_visitors_show_up_as_1000_visits(platform):
    """Distinct visitors = distinct xp_vid cookies; they all come from 127.0.0.1 here, like
    buyers behind one NAT address (the address ceiling is 2,000)."""
    share = a_shared_product(platform)

    def visit(i):
        src = "?src=qr" if i % 4 == 0 else ""
        resp = requests.get(
            share["url"] + src,
            timeout=30,
            cookies=platform.gateway.visitor_cookie(f"visitor-{i:06d}-{uuid.uuid4().hex[:7]}"),
        )
        return resp.status_code

    with ThreadPoolExecutor(20) as pool:
        assert set(pool.map(visit, range(1000))) == {200}
    result = wait_for(lambda: (s := stats(platform))["totals"]["visits"] >= 1000 and s, timeout=30)
    assert result["totals"]["visits"] == 1000
    by_share = {s["share_id"]: s for s in result["by_share"]}
    assert by_share[share["id"]]["visits"] == 1000
    assert sum(d["visitors"] for d in result["by_day"]) == 1000


def test_a_single_client_hammering_the_page_is_throttled(platform):
    share = a_shared_product(platform)
    session = requests.Session()
    codes = [
        session.get(
            share["url"], headers={"X-Forwarded-For": "203.0.113.9"}, timeout=20
        ).status_code
        for _ in range(60)
    ]
    assert set(codes) == {200}  # the page is always served ...
    wait_for(lambda: stats(platform)["totals"]["visits"] > 0)
    platform.drained()  # every visit was handed over, admitted or throttled, and written
    counted = stats(platform)["totals"]["visits"]
    assert 1 <= counted <= 10  # ... but only the burst (5, plus refills) is counted


def test_cookie_less_floods_from_one_address_are_throttled_too(platform):
    share = a_shared_product(platform)
    for _ in range(120):
        assert (
            requests.get(
                share["url"], headers={"X-Forwarded-For": "198.51.100.7"}, timeout=20
            ).status_code
            == 200
        )
    wait_for(lambda: stats(platform)["totals"]["visits"] > 0)
    platform.drained()
    assert 1 <= stats(platform)["totals"]["visits"] <= 70  # anonymous burst 60, plus refills


def test_paid_orders_feed_the_stats_once_each(platform):
    share = a_shared_product(platform)
    requests.get(share["url"], timeout=20)
    event_id = str(uuid.uuid4())
    paid = {
        "order_id": 5001,
        "buyer_id": 3,
        "supplier_id": 1,
        "shop_id": 7,
        "share_id": share["id"],
        "self_referral": False,
        "paid_fen": 7980,
        "lines": [],
        "paid_at": "2026-11-24T03:00:00Z",
    }
    platform.dispatch("orders", "order_paid", paid, event_id=event_id)
    platform.dispatch("orders", "order_paid", paid, event_id=event_id)
    platform.dispatch(
        "orders", "order_paid", {**paid, "order_id": 5002, "share_id": None, "paid_fen": 100}
    )
    result = wait_for(
        lambda: (s := stats(platform))["totals"]["orders"] >= 2 and s["totals"]["visits"] >= 1 and s
    )
    platform.drained()  # the redelivered and the third event were all handled
    result = stats(platform)
    assert result["totals"]["orders"] == 2 and result["totals"]["gmv_fen"] == 8080
    day = next(d for d in result["by_day"] if d["day"] == "2026-11-24")
    assert day["orders"] == 2 and day["gmv_fen"] == 8080
    by_share = {s["share_id"]: s for s in result["by_share"]}
    assert by_share[share["id"]]["orders"] == 1 and by_share[share["id"]]["gmv_fen"] == 7980
    assert by_share[None]["orders"] == 1


def test_only_the_keeper_sees_the_shop_stats(platform):
    add_shop(7, KEEPER)

    def stats(shop_id):
        return requests.get(
            f"{platform.url}/api/v1/shops/{shop_id}/stats",
            headers=platform.gateway.headers("member", 99),
            timeout=20,
        )

    resp = stats(7)  # another keeper's shop answers what a missing shop answers
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "shop_not_found"
    assert resp.content.replace(b"7", b"N") == stats(404).content.replace(b"404", b"N")
    assert requests.get(f"{platform.url}/api/v1/shops/7/stats", timeout=20).status_code == 401


def test_last_visit_gives_the_most_recent_share_a_visitor_opened(platform):
    first = a_shared_product(platform)
    second = a_shared_product(platform, product_id=102)
    vid = "buyer-visitor-00000001"
    requests.get(first["url"], cookies=platform.gateway.visitor_cookie(vid), timeout=20)
    time.sleep(0.05)
    requests.get(
        second["url"] + "?src=qr", cookies=platform.gateway.visitor_cookie(vid), timeout=20
    )
    with ClusterRpcProxy(platform.config) as cluster:
        last = wait_for(
            lambda: (
                (v := cluster.share.last_visit(vid, "2000-01-01T00:00:00Z"))
                and v["share_id"] == second["id"]
                and v
            )
        )
        assert last["kind"] == "scan" and last["code"] == second["code"]
        assert cluster.share.last_visit("nobody-at-all-0000", "2000-01-01T00:00:00Z") is None
        # share owns no attribution window: the caller (orders) must give where it starts
        for since in (None, "", "last week"):
            with pytest.raises(ValidationFailed) as exc:
                cluster.share.last_visit(vid, since)
            assert exc.value.details[0]["field"] == "since_iso"
        resolved = cluster.share.resolve(f"￥{first['code']}￥", None, None)
        assert resolved["share_id"] == first["id"]


def test_share_visits_are_announced_in_batches(platform):
    share = a_shared_product(platform)
    for i in range(3):
        requests.get(
            share["url"],
            cookies=platform.gateway.visitor_cookie(f"announce-visitor-{i:05d}"),
            timeout=20,
        )
    from sqlalchemy import create_engine, text

    engine = create_engine(platform.share.config["DATABASE_URL"])
    try:

        def announced():
            with engine.connect() as conn:
                rows = conn.execute(
                    text("select payload from outbox where event_type = 'share_visits_recorded'")
                ).all()
            return sum(r[0].count('"kind"') for r in rows) >= 3

        wait_for(announced)
    finally:
        engine.dispose()


def test_health_reports_the_poster_font(platform):
    with ClusterRpcProxy(platform.config) as cluster:
        health = cluster.share.health()
    assert health["status"] == "ok" and health["poster_font"].endswith((".ttc", ".ttf", ".otf"))
    assert extract_codes("") == []
