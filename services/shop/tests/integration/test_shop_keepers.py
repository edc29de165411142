"""Keepers and shops through the gateway, with the real shop service.

catalog and payouts are replaced by small fake nameko services; catalog events are fed with
``nameko.standalone.events.event_dispatcher`` in the envelope shape.
"""

import uuid
from datetime import timedelta

import eventlet
import pytest
import requests
import sqlalchemy as sa
from nameko.events import event_handler as nameko_event_handler
from nameko.rpc import rpc
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy

from shared import clock
from shared.errors import NotFound
from shared.ids import MAX_INT_ID as MAX_ID
from shared.testing import wait_drained, wait_for

PRODUCTS: dict[int, dict] = {}
SALES: dict[str, dict] = {}
CALLS: list[tuple] = []
LEVEL_EVENTS: list[dict] = []
SHOP_EVENTS: list[dict] = []


def product(pid: int, **over) -> dict:
    data = {
        "id": pid,
        "product_id": pid,
        "supplier_id": 7,
        "title": f"好物 {pid}",
        "category": "food_health",
        "description": "",
        "brand": None,
        "price_fen": 1990,
        "commission_bps": 1500,
        "commission_fen": 299,
        "stock": 50,
        "status": "listed",
        "available": True,
        "image_url": f"http://img.example/{pid}.jpg",
        "image_ref": None,
    }
    data.update(over)
    return data


class FakeCatalog:
    name = "catalog"

    @rpc
    def get_product(self, product_id):
        CALLS.append(("get_product", product_id))
        found = PRODUCTS.get(int(product_id))
        if found is None:
            raise NotFound(f"product {product_id} not found", code="product_not_found")
        return found

    @rpc
    def echo(self, payload=None):
        return payload


class FakePayouts:
    name = "payouts"

    @rpc
    def settled_sales(self, month):
        CALLS.append(("settled_sales", month))
        return SALES.get(month, {})

    @nameko_event_handler("shop", "level_changed")
    def on_level_changed(self, event):
        LEVEL_EVENTS.append(event)

    @nameko_event_handler("shop", "shop_opened")
    def on_shop_opened(self, event):
        SHOP_EVENTS.append(event)

    @nameko_event_handler("shop", "shop_activated")
    def on_shop_activated(self, event):
        SHOP_EVENTS.append(event)

    @nameko_event_handler("shop", "selection_changed")
    def on_selection_changed(self, event):
        SHOP_EVENTS.append(event)


@pytest.fixture
def platform(start_service, gateway, container_factory, service_config, rabbit_config):
    PRODUCTS.clear()
    SALES.clear()
    CALLS.clear()
    LEVEL_EVENTS.clear()
    SHOP_EVENTS.clear()
    cfg = service_config("gateway")
    for fake in (FakeCatalog, FakePayouts):
        container_factory(fake, cfg).start()
    shop = start_service("shop")
    return {
        "gateway": gateway,
        "shop": shop,
        "config": cfg,
        "url": gateway.url,
        "vhost": rabbit_config["vhost"],
    }


def drained(platform) -> None:
    """Nothing more will arrive: the shop's outbox is published and every queue is empty."""
    wait_drained(platform["vhost"], backlogs=lambda: outbox_backlog(platform))


def outbox_backlog(platform) -> int:
    engine = sa.create_engine(platform["shop"].config["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            ).scalar_one()
    finally:
        engine.dispose()


def register(gw, credit=750, real=True, phone=None, nickname="阿花"):
    phone = phone or "13" + str(uuid.uuid4().int)[:9]
    resp = requests.post(
        f"{gw.url}/api/v1/members",
        timeout=10,
        json={
            "nickname": nickname,
            "phone": phone,
            "credit_score": credit,
            "real_name_verified": real,
        },
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return body["id"], {"Authorization": f"Bearer {body['token']}"}


def open_shop(gw, headers, name="阿花的好物", verify=True):
    resp = requests.post(f"{gw.url}/api/v1/shops", json={"name": name}, headers=headers, timeout=10)
    assert resp.status_code == 201, resp.text
    shop = resp.json()
    if verify:
        resp = requests.post(
            f"{gw.url}/api/v1/shops/{shop['id']}/verification", headers=headers, timeout=10
        )
        assert resp.status_code == 200, resp.text
        shop = resp.json()
    return shop


def pick(gw, headers, shop_id, pid, reason=None):
    body = {} if reason is None else {"reason": reason}
    return requests.put(
        f"{gw.url}/api/v1/shops/{shop_id}/products/{pid}", json=body, headers=headers, timeout=10
    )


def public(gw, number, **params):
    return requests.get(f"{gw.url}/api/v1/shops/by-number/{number}", params=params, timeout=10)


def send_catalog_event(cfg, event_type, data, occurred_at=None, event_id=None):
    dispatch = event_dispatcher(cfg)
    dispatch(
        "catalog",
        event_type,
        {
            "id": event_id or str(uuid.uuid4()),
            "type": event_type,
            "version": 1,
            "source": "catalog",
            "occurred_at": occurred_at or clock.iso(clock.now()),
            "correlation_id": None,
            "data": data,
        },
    )


def snapshot(pid, **over):
    p = product(pid, **over)
    p.pop("id")
    return p


# --- members and opening a shop -----------------------------------------------------------------
def test_member_under_700_is_refused_with_a_clear_reason(platform):
    gw = platform["gateway"]
    _, headers = register(gw, credit=699)
    resp = requests.post(
        f"{gw.url}/api/v1/shops", json={"name": "阿花的好物"}, headers=headers, timeout=10
    )
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert [d["rule"] for d in error["details"]] == ["credit_score_too_low"]
    assert "700" in error["message"]


def test_member_without_real_name_is_refused(platform):
    gw = platform["gateway"]
    _, headers = register(gw, credit=800, real=False)
    resp = requests.post(
        f"{gw.url}/api/v1/shops", json={"name": "阿花的好物"}, headers=headers, timeout=10
    )
    assert resp.status_code == 422
    assert [d["rule"] for d in resp.json()["error"]["details"]] == ["real_name_not_verified"]


def test_phone_must_be_a_mainland_mobile_and_unique(platform):
    gw = platform["gateway"]
    bad = requests.post(
        f"{gw.url}/api/v1/members",
        timeout=10,
        json={"nickname": "x", "phone": "12345", "credit_score": 700, "real_name_verified": True},
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "phone"
    register(gw, phone="13800138000")
    again = requests.post(
        f"{gw.url}/api/v1/members",
        timeout=10,
        json={
            "nickname": "y",
            "phone": "138-0013-8000",
            "credit_score": 700,
            "real_name_verified": True,
        },
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "phone_taken"


def test_keeper_opens_a_shop_verifies_it_and_picks_products_with_reasons(platform):
    gw = platform["gateway"]
    member_id, headers = register(gw)
    resp = requests.post(
        f"{gw.url}/api/v1/shops",
        headers=headers,
        timeout=10,
        json={"name": "阿花的好物", "description": "每天一款"},
    )
    assert resp.status_code == 201, resp.text
    shop = resp.json()
    assert shop["status"] == "pending_verification"
    assert shop["display_name"] == "阿花的好物小铺"
    assert shop["level"] == "newcomer"
    assert len(shop["shop_number"]) == 6 and shop["shop_number"].isdigit()
    number = shop["shop_number"]
    assert public(gw, number).status_code == 404  # not public before verification

    resp = requests.post(
        f"{gw.url}/api/v1/shops/{shop['id']}/verification", headers=headers, timeout=10
    )
    assert resp.status_code == 200 and resp.json()["status"] == "active"

    PRODUCTS.update({1: product(1), 2: product(2, title="手工红糖")})
    resp = pick(gw, headers, shop["id"], 1, "自己吃了三年 <真的>")
    assert resp.status_code == 200, resp.text
    assert resp.json()["selected"] is True and resp.json()["reason"] == "自己吃了三年 <真的>"
    assert pick(gw, headers, shop["id"], 2).status_code == 200
    assert pick(gw, headers, shop["id"], 404).status_code == 404  # not in the catalog

    view = public(gw, number)
    assert view.status_code == 200
    body = view.json()
    assert body["display_name"] == "阿花的好物小铺" and body["level_badge"]["label"] == "新晋"
    assert {p["product_id"]: p["reason"] for p in body["products"]} == {
        1: "自己吃了三年 <真的>",
        2: None,
    }
    assert body["unavailable_products"] == []

    me = requests.get(f"{gw.url}/api/v1/me", headers=headers, timeout=10).json()
    assert me["id"] == member_id and [s["shop_number"] for s in me["shops"]] == [number]
    detail = requests.get(f"{gw.url}/api/v1/shops/{shop['id']}", headers=headers, timeout=10)
    assert detail.status_code == 200 and detail.json()["selection_count"] == 2

    resp = requests.delete(
        f"{gw.url}/api/v1/shops/{shop['id']}/products/2", headers=headers, timeout=10
    )
    assert resp.status_code == 204
    assert [p["product_id"] for p in public(gw, number).json()["products"]] == [1]

    from shared.contracts.events import SelectionChanged, ShopChanged

    wait_for(lambda: len(SHOP_EVENTS) >= 5, timeout=5.0)
    drained(platform)  # and no sixth event is on its way
    assert [e["type"] for e in SHOP_EVENTS] == [
        "shop_opened",
        "shop_activated",
        "selection_changed",
        "selection_changed",
        "selection_changed",
    ]
    opened = ShopChanged.model_validate(SHOP_EVENTS[0]["data"])
    assert (opened.shop_number, opened.status, opened.member_id) == (
        number,
        "pending_verification",
        member_id,
    )
    assert ShopChanged.model_validate(SHOP_EVENTS[1]["data"]).status == "active"
    changes = [SelectionChanged.model_validate(e["data"]) for e in SHOP_EVENTS[2:]]
    assert [(c.product_id, c.selected, c.reason) for c in changes] == [
        (1, True, "自己吃了三年 <真的>"),
        (2, True, None),
        (2, False, None),
    ]


def test_shop_name_rules_apply_on_open_and_edit(platform):
    gw = platform["gateway"]
    _, headers = register(gw)
    resp = requests.post(
        f"{gw.url}/api/v1/shops", json={"name": "阿花官方旗舰店"}, headers=headers, timeout=10
    )
    assert resp.status_code == 422
    assert {d["word"] for d in resp.json()["error"]["details"]} == {"官方", "旗舰"}
    shop = open_shop(gw, headers, name="阿花的小铺", verify=False)
    assert shop["display_name"] == "阿花的小铺"
    url = f"{gw.url}/api/v1/shops/{shop['id']}"
    assert (
        requests.patch(url, json={"name": "专卖好物"}, headers=headers, timeout=10).status_code
        == 422
    )
    requests.post(f"{url}/verification", headers=headers, timeout=10).raise_for_status()
    assert public(gw, shop["shop_number"]).json()["display_name"] == "阿花的小铺"
    resp = requests.patch(
        url, json={"name": "好" * 20, "description": "新简介"}, headers=headers, timeout=10
    )
    assert resp.status_code == 200
    assert resp.json()["display_name"] == "好" * 20 + "小铺"
    assert resp.json()["description"] == "新简介"
    view = public(gw, shop["shop_number"]).json()
    assert (view["display_name"], view["description"]) == ("好" * 20 + "小铺", "新简介")


def test_one_shop_per_member_unless_an_admin_grants_more(platform):
    gw = platform["gateway"]
    member_id, headers = register(gw)
    open_shop(gw, headers, verify=False)
    resp = requests.post(
        f"{gw.url}/api/v1/shops", json={"name": "第二家"}, headers=headers, timeout=10
    )
    assert resp.status_code == 422
    assert [d["rule"] for d in resp.json()["error"]["details"]] == ["shop_quota_reached"]
    resp = requests.post(
        f"{gw.url}/api/v1/admin/members/{member_id}/shop-quota",
        json={"quota": 2},
        headers=gw.headers("admin"),
        timeout=10,
    )
    assert resp.status_code == 200 and resp.json()["shop_quota"] == 2
    second = open_shop(gw, headers, name="第二家", verify=False)
    assert second["status"] == "pending_verification"


def test_shop_number_collision_draws_another_number(platform, monkeypatch):
    from shop import domain

    draws = iter(["000123", "000123", "000456"])
    monkeypatch.setattr(domain, "new_shop_number", lambda: next(draws))
    gw = platform["gateway"]
    first = open_shop(gw, register(gw)[1], verify=False)
    second = open_shop(gw, register(gw)[1], verify=False)
    assert first["shop_number"] == "000123"  # leading zeros kept
    assert second["shop_number"] == "000456"
    assert public(gw, "000123").status_code == 404  # pending shops are not public
    with ServiceRpcProxy("shop", platform["config"]) as shop_rpc:
        assert shop_rpc.get_shop_by_number("000123")["id"] == first["id"]


def test_a_keeper_never_touches_another_keepers_shop(platform):
    gw = platform["gateway"]
    _, owner = register(gw)
    _, other = register(gw)
    shop = open_shop(gw, owner)
    PRODUCTS[1] = product(1)
    missing = MAX_ID if shop["id"] != MAX_ID else 1  # ids are random: any other id is free
    attempts = {
        "pick": lambda sid: pick(gw, other, sid, 1),
        "detail": lambda sid: requests.get(
            f"{gw.url}/api/v1/shops/{sid}", headers=other, timeout=10
        ),
        "edit": lambda sid: requests.patch(
            f"{gw.url}/api/v1/shops/{sid}", json={"name": "抢走"}, headers=other, timeout=10
        ),
        "verify": lambda sid: requests.post(
            f"{gw.url}/api/v1/shops/{sid}/verification", headers=other, timeout=10
        ),
        "unpick": lambda sid: requests.delete(
            f"{gw.url}/api/v1/shops/{sid}/products/1", headers=other, timeout=10
        ),
    }
    for what, attempt in attempts.items():
        # another keeper's shop answers exactly what a shop that does not exist answers
        theirs, absent = attempt(shop["id"]), attempt(missing)
        assert theirs.status_code == absent.status_code == 404, (what, theirs.text)
        assert theirs.json()["error"]["code"] == "shop_not_found"
        assert theirs.content.replace(str(shop["id"]).encode(), b"<id>") == absent.content.replace(
            str(missing).encode(), b"<id>"
        ), what
    assert (
        requests.get(
            f"{gw.url}/api/v1/shops/{shop['id']}", headers=gw.headers("admin"), timeout=10
        ).status_code
        == 200
    )


def test_reason_is_length_limited_and_free_of_control_characters(platform):
    gw = platform["gateway"]
    _, headers = register(gw)
    shop = open_shop(gw, headers)
    PRODUCTS[1] = product(1)
    assert pick(gw, headers, shop["id"], 1, "好" * 201).status_code == 422
    assert pick(gw, headers, shop["id"], 1, "坏\x1b[31m").status_code == 422
    resp = pick(gw, headers, shop["id"], 1, "<script>alert(1)</script>")
    assert resp.status_code == 200  # stored as plain text; pages escape it
    assert resp.json()["reason"] == "<script>alert(1)</script>"


def test_shop_refuses_the_1001st_product(platform):
    gw = platform["gateway"]
    _, headers = register(gw)
    shop = open_shop(gw, headers)
    for pid in range(1, 1002):
        PRODUCTS[pid] = product(pid)
    pool = eventlet.GreenPool(8)
    statuses = list(
        pool.imap(lambda pid: pick(gw, headers, shop["id"], pid).status_code, range(1, 1001))
    )
    assert statuses == [200] * 1000
    resp = pick(gw, headers, shop["id"], 1001)
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["rule"] == "selection_limit"
    assert pick(gw, headers, shop["id"], 1000, "改个理由").status_code == 200  # edits still pass
    url = f"{gw.url}/api/v1/shops/{shop['id']}/products/1"
    assert requests.delete(url, headers=headers, timeout=10).status_code == 204
    assert pick(gw, headers, shop["id"], 1001).status_code == 200


# --- the catalog read model ---------------------------------------------------------------------
def test_delisted_product_shows_unavailable_in_the_shop_view_within_a_second(platform):
    gw, cfg = platform["gateway"], platform["config"]
    _, headers = register(gw)
    shop = open_shop(gw, headers)
    PRODUCTS.update({1: product(1), 2: product(2)})
    assert pick(gw, headers, shop["id"], 1, "好吃").status_code == 200
    assert pick(gw, headers, shop["id"], 2).status_code == 200

    send_catalog_event(cfg, "product_delisted", snapshot(1, status="delisted", available=False))

    def delisted():
        body = public(gw, shop["shop_number"]).json()
        return body if [p["product_id"] for p in body["unavailable_products"]] == [1] else None

    body = wait_for(delisted, timeout=1.0, interval=0.02)
    assert [p["product_id"] for p in body["products"]] == [2]
    assert body["unavailable_products"][0] == {
        **body["unavailable_products"][0],
        "available": False,
        "reason": "好吃",
    }
    # the selection is kept: relisting brings it back
    send_catalog_event(cfg, "product_listed", snapshot(1))
    wait_for(lambda: len(public(gw, shop["shop_number"]).json()["products"]) == 2, timeout=5.0)


def test_out_of_order_catalog_events_keep_the_newest_snapshot(platform):
    gw, cfg = platform["gateway"], platform["config"]
    _, headers = register(gw)
    shop = open_shop(gw, headers)
    PRODUCTS[1] = product(1)
    assert pick(gw, headers, shop["id"], 1).status_code == 200
    now = clock.now()
    newest, older = clock.iso(now + timedelta(days=10)), clock.iso(now + timedelta(days=5))
    send_catalog_event(
        cfg,
        "product_changed",
        snapshot(1, stock=0, available=False, title="新标题"),
        occurred_at=newest,
    )
    wait_for(lambda: public(gw, shop["shop_number"]).json()["unavailable_products"], timeout=5.0)
    send_catalog_event(cfg, "product_listed", snapshot(1, title="旧标题"), occurred_at=older)
    marker = str(uuid.uuid4())
    # a later, unrelated event proves the older one has been consumed before we look
    PRODUCTS[2] = product(2)
    send_catalog_event(cfg, "product_listed", snapshot(2, title=marker))
    with ServiceRpcProxy("shop", cfg) as shop_rpc:
        wait_for(lambda: shop_rpc.get_selection(shop["id"], 2)["title"] == marker, timeout=5.0)
        sel = shop_rpc.get_selection(shop["id"], 1)
    assert sel["available"] is False and sel["title"] == "新标题"


def test_catalog_events_are_applied_once_per_event_id(platform):
    gw, cfg = platform["gateway"], platform["config"]
    _, headers = register(gw)
    shop = open_shop(gw, headers)
    event_id = str(uuid.uuid4())
    send_catalog_event(cfg, "product_listed", snapshot(5, title="一"), event_id=event_id)
    with ServiceRpcProxy("shop", cfg) as shop_rpc:
        wait_for(lambda: shop_rpc.get_selection(shop["id"], 5)["title"] == "一", timeout=5.0)
        send_catalog_event(cfg, "product_changed", snapshot(5, title="二"), event_id=event_id)
        send_catalog_event(cfg, "product_changed", snapshot(5, title="三"))
        wait_for(lambda: shop_rpc.get_selection(shop["id"], 5)["title"] == "三", timeout=5.0)
    # known from the event: picking it needs no catalog call
    assert pick(gw, headers, shop["id"], 5).status_code == 200
    assert ("get_product", 5) not in CALLS


# --- RPC surface for the other services ---------------------------------------------------------
def test_rpc_surface_for_other_services(platform):
    gw, cfg = platform["gateway"], platform["config"]
    member_id, headers = register(gw, phone="13900139000", nickname="小王")
    shop = open_shop(gw, headers)
    PRODUCTS[3] = product(3)
    pick(gw, headers, shop["id"], 3, "推荐")
    with ServiceRpcProxy("shop", cfg) as shop_rpc:
        got = shop_rpc.get_shop(shop["id"])
        assert {
            k: got[k]
            for k in ("id", "member_id", "shop_number", "status", "level", "level_bonus_bps")
        } == {
            "id": shop["id"],
            "member_id": member_id,
            "shop_number": shop["shop_number"],
            "status": "active",
            "level": "newcomer",
            "level_bonus_bps": 0,
        }
        assert shop_rpc.get_selection(shop["id"], 3) == {
            **shop_rpc.get_selection(shop["id"], 3),
            "shop_id": shop["id"],
            "product_id": 3,
            "selected": True,
            "reason": "推荐",
            "available": True,
        }
        assert shop_rpc.get_selection(shop["id"], 99)["selected"] is False
        assert shop_rpc.get_keeper_contact(shop["id"]) == {
            "shop_id": shop["id"],
            "shop_number": shop["shop_number"],
            "display_name": shop["display_name"],
            "member_id": member_id,
            "nickname": "小王",
            "phone": "13900139000",
        }
        assert shop_rpc.get_member(member_id)["nickname"] == "小王"
        created = shop_rpc.register_member(
            {
                "nickname": "rpc",
                "phone": "13700137000",
                "credit_score": 720,
                "real_name_verified": True,
            }
        )
        assert created["id"] != member_id  # ids are random: they tell nothing of the count
        assert shop_rpc.get_member(created["id"])["nickname"] == "rpc"


# --- levels -------------------------------------------------------------------------------------
def test_a_month_of_sales_recalculates_the_level_exactly_once(platform):
    gw = platform["gateway"]
    _, h1 = register(gw)
    _, h2 = register(gw)
    _, h3 = register(gw)
    s1, s2, s3 = open_shop(gw, h1), open_shop(gw, h2), open_shop(gw, h3)
    SALES["2026-09"] = {str(s1["id"]): 150_000, str(s2["id"]): 2_000_000, str(s3["id"]): 500}
    assert public(gw, s2["shop_number"]).json()["level"] == "newcomer"  # a cached rendering
    url = f"{gw.url}/api/v1/admin/levels/recalculate"
    first = requests.post(url, json={"month": "2026-09"}, headers=gw.headers("admin"), timeout=10)
    assert first.status_code == 200, first.text
    expected = [
        {"shop_id": s1["id"], "old_level": "newcomer", "new_level": "senior", "bonus_bps": 50},
        {"shop_id": s2["id"], "old_level": "newcomer", "new_level": "elite", "bonus_bps": 100},
    ]
    expected.sort(key=lambda change: change["shop_id"])  # shop id order (ids are random)
    assert first.json()["month"] == "2026-09" and first.json()["changes"] == expected
    SALES["2026-09"] = {str(s1["id"]): 9_000_000}  # a later answer must not matter
    for _ in range(3):
        again = requests.post(
            url, json={"month": "2026-09"}, headers=gw.headers("admin"), timeout=10
        )
        assert again.status_code == 200 and again.json()["changes"] == expected
    assert CALLS.count(("settled_sales", "2026-09")) == 1
    with ServiceRpcProxy("shop", platform["config"]) as shop_rpc:
        assert shop_rpc.get_shop(s1["id"])["level"] == "senior"
        assert shop_rpc.get_shop(s1["id"])["level_bonus_bps"] == 50
        assert shop_rpc.get_shop(s2["id"])["level"] == "elite"
    wait_for(lambda: len(LEVEL_EVENTS) >= 2, timeout=5.0)
    drained(platform)  # no third level_changed is on its way
    engine = sa.create_engine(platform["shop"].config["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            emitted = conn.execute(
                sa.text("SELECT count(*) FROM outbox WHERE event_type = 'level_changed'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert emitted == 2
    assert sorted(
        (e["data"]["shop_id"], e["data"]["new_level"], e["data"]["bonus_bps"]) for e in LEVEL_EVENTS
    ) == sorted([(s1["id"], "senior", 50), (s2["id"], "elite", 100)])
    view = public(gw, s2["shop_number"]).json()
    assert view["level_badge"] == {"code": "elite", "label": "精英", "bonus_bps": 100}


def test_levels_of_an_unfinished_month_are_refused(platform):
    gw = platform["gateway"]
    month = clock.now().strftime("%Y-%m")
    resp = requests.post(
        f"{gw.url}/api/v1/admin/levels/recalculate",
        json={"month": month},
        headers=gw.headers("admin"),
        timeout=10,
    )
    assert resp.status_code == 422
    resp = requests.post(
        f"{gw.url}/api/v1/admin/levels/recalculate",
        json={"month": "2026-9"},
        headers=gw.headers("admin"),
        timeout=10,
    )
    assert resp.status_code == 422


# --- concurrency (PostgreSQL row locks) ---------------------------------------------------------
def _seed_selections(db_url: str, shop_id: int, count: int) -> None:
    """Put ``count`` picked products straight into the shop's tables (the rows picking makes)."""
    engine = sa.create_engine(db_url)
    now = clock.now()
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO catalog_products (product_id, supplier_id, title, category, "
                    "price_fen, commission_bps, stock, status, available, image_url, brand, "
                    "occurred_at) VALUES (:pid, 7, :title, 'food_health', 1990, 1500, 50, "
                    "'listed', true, NULL, NULL, :at)"
                ),
                [{"pid": 10_000 + i, "title": f"好物 {i}", "at": now} for i in range(count)],
            )
            conn.execute(
                sa.text(
                    "INSERT INTO selections (shop_id, product_id, reason, selected_at) "
                    "VALUES (:sid, :pid, NULL, :at)"
                ),
                [{"sid": shop_id, "pid": 10_000 + i, "at": now} for i in range(count)],
            )
            conn.execute(
                sa.text("UPDATE shops SET selection_count = :n WHERE id = :sid"),
                {"n": count, "sid": shop_id},
            )
    finally:
        engine.dispose()


@pytest.mark.postgres_only
def test_two_concurrent_picks_at_999_cannot_both_pass(platform):
    gw = platform["gateway"]
    _, headers = register(gw)
    shop = open_shop(gw, headers)
    _seed_selections(platform["shop"].config["DATABASE_URL"], shop["id"], 999)
    for round_ in range(3):
        PRODUCTS.update(
            {1 + 2 * round_: product(1 + 2 * round_), 2 + 2 * round_: product(2 + 2 * round_)}
        )
        pool = eventlet.GreenPool(2)
        statuses = sorted(
            pool.imap(
                lambda pid: pick(gw, headers, shop["id"], pid).status_code,
                [1 + 2 * round_, 2 + 2 * round_],
            )
        )
        assert statuses == [200, 422]
        detail = requests.get(
            f"{gw.url}/api/v1/shops/{shop['id']}", headers=headers, timeout=10
        ).json()
        assert detail["selection_count"] == 1000 == len(detail["selections"])
        # free one slot for the next round
        winner = [
            s["product_id"]
            for s in detail["selections"]
            if s["product_id"] in (1 + 2 * round_, 2 + 2 * round_)
        ]
        assert len(winner) == 1
        assert (
            requests.delete(
                f"{gw.url}/api/v1/shops/{shop['id']}/products/{winner[0]}",
                headers=headers,
                timeout=10,
            ).status_code
            == 204
        )


@pytest.mark.postgres_only
def test_two_concurrent_openings_cannot_exceed_the_shop_quota(platform):
    gw = platform["gateway"]
    _, headers = register(gw)
    pool = eventlet.GreenPool(3)
    statuses = sorted(
        pool.imap(
            lambda n: (
                requests.post(
                    f"{gw.url}/api/v1/shops",
                    json={"name": f"同时开店{n}"},
                    headers=headers,
                    timeout=10,
                ).status_code
            ),
            range(3),
        )
    )
    assert statuses == [201, 422, 422]
    me = requests.get(f"{gw.url}/api/v1/me", headers=headers, timeout=10).json()
    assert len(me["shops"]) == 1 and me["shops_owned"] == 1


def test_public_view_pages_through_available_products(platform):
    gw = platform["gateway"]
    _, headers = register(gw)
    shop = open_shop(gw, headers)
    for pid in range(1, 6):
        PRODUCTS[pid] = product(pid)
        assert pick(gw, headers, shop["id"], pid).status_code == 200
    first = public(gw, shop["shop_number"], limit=2).json()
    assert len(first["products"]) == 2 and first["next_cursor"]
    seen = [p["product_id"] for p in first["products"]]
    cursor = first["next_cursor"]
    while cursor:
        page = public(gw, shop["shop_number"], limit=2, cursor=cursor).json()
        seen += [p["product_id"] for p in page["products"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == [1, 2, 3, 4, 5] and len(seen) == 5
    assert public(gw, "12345").status_code == 404
    assert public(gw, shop["shop_number"], limit=0).status_code == 422
