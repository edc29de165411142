"""Fraud held for review and suspension (issue 13), on the real services behind the real gateway:
catalog, shop, share, orders and payouts, speaking HTTP like clients do.

The issue's case: a second account with the keeper's own name, phone and address bought through
the keeper's share and accrued commission. Now the commission is held (``fraud:same_phone``,
``fraud:same_address``) until an admin clears it (it settles normally) or forfeits it (the keeper
gets nothing, the books balance). A suspended shop's pages say so, its commissions are held,
new checkouts through its shares are not attributed, and reinstating undoes it."""

from __future__ import annotations

import itertools
from datetime import timedelta

import requests

from shared import clock
from shared.testing import wait_for

_phones = itertools.count(13700005000)
KEEPER_ADDRESS = "杭州市西湖区文三路 100 号 3 幢"


class Client:
    def __init__(self, gateway):
        self.url = gateway.url
        self.admin = gateway.headers("admin")

    def call(self, method, path, headers=None, expect=(200, 201), **kw):
        resp = requests.request(method, self.url + path, headers=headers, timeout=30, **kw)
        assert resp.status_code in expect, (method, path, resp.status_code, resp.text)
        return resp

    def member(self, nickname, phone=None):
        body = {
            "nickname": nickname,
            "phone": phone or str(next(_phones)),
            "credit_score": 750,
            "real_name_verified": True,
        }
        created = self.call("POST", "/api/v1/members", json=body).json()
        return created["id"], {"Authorization": f"Bearer {created['token']}"}, body["phone"]

    def supplier_with_product(self):
        reg = self.call(
            "POST",
            "/api/v1/suppliers",
            json={
                "name": "Hangzhou Tea Co.",
                "registered_capital_fen": 200_000_000,
                "general_taxpayer": True,
                "contact": {"phone": "13800000000", "wechat": "hz_tea"},
                "brand_authorization_levels": 1,
            },
        ).json()
        headers = {"Authorization": f"Bearer {reg['token']}"}
        self.call(
            "POST",
            f"/api/v1/suppliers/{reg['id']}/deposit",
            json={"amount_fen": 1_000_000},
            headers=headers,
        )
        product = self.call(
            "POST",
            "/api/v1/products",
            headers=headers,
            json={
                "title": "West Lake Longjing 250g",
                "category": "food_health",
                "price_fen": 9900,
                "stock": 50,
                "commission_bps": 1500,
                "market_commission_bps": 1200,
                "reference_price_fen": 12900,
            },
        ).json()
        return headers, product["id"]

    def keeper_with_share(self, product_id):
        member_id, headers, phone = self.member("阿花")
        shop = self.call("POST", "/api/v1/shops", json={"name": "阿花的茶"}, headers=headers).json()
        self.call("POST", f"/api/v1/shops/{shop['id']}/verification", headers=headers)
        self.call(
            "PUT",
            f"/api/v1/shops/{shop['id']}/products/{product_id}",
            json={"reason": "每天一杯"},
            headers=headers,
        )
        share = self.call(
            "POST",
            "/api/v1/shares",
            json={"shop_id": shop["id"], "product_id": product_id},
            headers=headers,
        ).json()
        return member_id, headers, phone, shop, share

    def buy(self, headers, product_id, address, share_code=None):
        body = {"items": [{"product_id": product_id, "quantity": 1}], "address": address}
        if share_code:
            body["share_code"] = share_code
        order = self.call("POST", "/api/v1/orders", json=body, headers=headers).json()["orders"][0]
        self.call("POST", f"/api/v1/orders/{order['id']}/pay", headers=headers)
        return order

    def receive(self, supplier, buyer, order_id):
        ship = {"carrier": "顺丰", "tracking_no": f"SF{order_id}"}
        self.call("POST", f"/api/v1/orders/{order_id}/ship", json=ship, headers=supplier)
        self.call("POST", f"/api/v1/orders/{order_id}/confirm", headers=buyer)

    def holds(self, status="open", **query):
        params = {"status": status, **query}
        resp = self.call("GET", "/api/v1/admin/holds", headers=self.admin, params=params)
        return resp.json()["holds"]

    def settle(self, days=16):
        as_of = clock.iso(clock.now() + timedelta(days=days))
        return self.call(
            "POST", "/api/v1/admin/settlements/run", json={"as_of": as_of}, headers=self.admin
        ).json()


def platform(gateway, start_service):
    for service in ("catalog", "shop", "share", "orders", "payouts"):
        start_service(service, XIAOPU_FINGERPRINT_SALT="test-fingerprint-salt")
    return Client(gateway)


def held_reasons(api, order_id):
    return sorted(h["reason"] for h in api.holds() if h["order_id"] == order_id)


def test_a_second_account_with_the_keepers_phone_and_address_is_held_then_cleared_or_forfeited(
    gateway, start_service
):
    api = platform(gateway, start_service)
    supplier, product = api.supplier_with_product()
    _, keeper, keeper_phone, shop, share = api.keeper_with_share(product)
    own = {"name": "王阿花", "phone": keeper_phone, "line": KEEPER_ADDRESS}
    api.buy(keeper, product, own)  # the keeper's own purchase, shipped to their own address

    _, second, _ = api.member("王阿花")  # another account, the keeper's name, phone and address
    alias = {"name": "王阿花", "phone": f"+86 {keeper_phone}", "line": "杭州市西湖区文三路100号3幢"}
    cleared = api.buy(second, product, alias, share_code=share["display_code"])
    forfeited = api.buy(second, product, alias, share_code=share["display_code"])
    assert cleared["shop_id"] == shop["id"]  # attributed: the share brought it
    for order in (cleared, forfeited):
        wait_for(lambda o=order: len(held_reasons(api, o["id"])) == 2)
        assert held_reasons(api, order["id"]) == ["fraud:same_address", "fraud:same_phone"]
        api.receive(supplier, second, order["id"])
    wait_for(lambda: all(h["after_sales_until"] for h in api.holds()))  # payouts knows the window
    assert api.settle()["count"] == 0  # both windows closed, both held: nothing settles

    commission = 1485  # 9900 × 15%
    hold = next(h for h in api.holds() if h["order_id"] == cleared["id"])
    assert hold["net_commission_fen"] == commission and hold["detail"]["keeper_member_id"]
    clear = api.call(
        "POST",
        f"/api/v1/admin/holds/{hold['id']}/clear",
        json={"reason": "家人代买，已核实"},
        headers=api.admin,
    ).json()
    assert {h["decision"] for h in clear["order_holds"]} == {"cleared"}
    assert clear["hold"]["decided_by"] == "admin:admin"

    hold = next(h for h in api.holds() if h["order_id"] == forfeited["id"])
    forfeit = api.call(
        "POST",
        f"/api/v1/admin/holds/{hold['id']}/forfeit",
        json={"reason": "自买自卖"},
        headers=api.admin,
    ).json()
    assert forfeit["forfeited_fen"] == commission
    assert {h["decision"] for h in forfeit["order_holds"]} == {"forfeited"}
    again = api.call(
        "POST",
        f"/api/v1/admin/holds/{hold['id']}/clear",
        json={"reason": "改主意"},
        headers=api.admin,
        expect=(409,),
    )
    assert again.json()["error"]["code"] == "hold_closed"
    assert api.holds() == []

    settled = api.settle()
    by_order = {s["order_id"]: s["amount_fen"] for s in settled["settled"]}
    assert by_order[cleared["id"]] == commission and by_order[forfeited["id"]] == 0
    earnings = api.call("GET", f"/api/v1/shops/{shop['id']}/earnings", headers=keeper).json()
    assert earnings["settleable_fen"] == commission and earnings["pending_fen"] == 0
    books = api.call("GET", "/api/v1/admin/books", headers=api.admin).json()
    assert books["balanced"] is True
    history = api.holds(status="closed")
    assert {(h["order_id"], h["decision"], h["decision_reason"]) for h in history} == {
        (cleared["id"], "cleared", "家人代买，已核实"),
        (forfeited["id"], "forfeited", "自买自卖"),
    }


def test_a_suspended_shop_is_unavailable_its_commissions_held_until_reinstated(
    gateway, start_service
):
    api = platform(gateway, start_service)
    supplier, product = api.supplier_with_product()
    _, keeper, _, shop, share = api.keeper_with_share(product)
    _, buyer, buyer_phone = api.member("小李")
    address = {"name": "李四", "phone": buyer_phone, "line": "上海市徐汇区某路 9 号"}
    before = api.buy(buyer, product, address, share_code=share["display_code"])
    api.receive(supplier, buyer, before["id"])
    wait_for(
        lambda: (
            api.call("GET", f"/api/v1/shops/{shop['id']}/earnings", headers=keeper).json()[
                "pending_fen"
            ]
            > 0
        )
    )

    path = f"/api/v1/admin/shops/{shop['id']}/suspend"
    out = api.call("POST", path, json={"reason": "刷单调查"}, headers=api.admin).json()
    assert (out["status"], out["suspension_reason"]) == ("suspended", "刷单调查")
    wait_for(lambda: held_reasons(api, before["id"]) == ["suspended"])

    def landing_gone():  # a Response with a 4xx status is falsy: answer its text
        resp = requests.get(f"{api.url}/s/{share['code']}", timeout=10)
        return resp.text if resp.status_code == 410 else None

    assert "暂停营业" in wait_for(landing_gone)
    public = api.call("GET", f"/api/v1/shops/by-number/{shop['shop_number']}", expect=(410,)).json()
    assert public["error"]["code"] == "shop_suspended" and "暂停营业" in public["error"]["message"]
    wait_for(lambda: all(h["after_sales_until"] for h in api.holds()))  # payouts knows the window
    assert api.settle()["count"] == 0  # the window closed, but held: not settled

    during = api.buy(buyer, product, address, share_code=share["display_code"])
    assert during["shop_id"] is None  # a suspended shop's share brings no attribution

    path = f"/api/v1/admin/shops/{shop['id']}/reinstate"
    out = api.call("POST", path, json={"reason": "调查结束"}, headers=api.admin).json()
    assert out["status"] == "active"
    wait_for(lambda: held_reasons(api, before["id"]) == [])
    released = [h for h in api.holds(status="closed") if h["order_id"] == before["id"]]
    assert [(h["decision"], h["decision_reason"]) for h in released] == [("released", "调查结束")]
    wait_for(lambda: requests.get(f"{api.url}/s/{share['code']}", timeout=10).status_code == 200)
    settled = api.settle()
    assert [s["order_id"] for s in settled["settled"]] == [before["id"]]
    assert api.call("GET", "/api/v1/admin/books", headers=api.admin).json()["balanced"]


def test_suspending_a_keeper_suspends_their_shop(gateway, start_service):
    api = platform(gateway, start_service)
    _, product = api.supplier_with_product()
    keeper_id, _, _, shop, _ = api.keeper_with_share(product)
    path = f"/api/v1/admin/members/{keeper_id}/suspend"
    member = api.call("POST", path, json={"reason": "冒用身份"}, headers=api.admin).json()
    assert member["suspended"] is True
    api.call("GET", f"/api/v1/shops/by-number/{shop['shop_number']}", expect=(410,))
    refused = api.call(
        "POST", path, json={"reason": "\u202e反转"}, headers=api.admin, expect=(422,)
    )
    assert refused.json()["error"]["code"] == "validation_failed"
    path = f"/api/v1/admin/members/{keeper_id}/reinstate"
    api.call("POST", path, json={"reason": "核实无误"}, headers=api.admin)
    api.call("GET", f"/api/v1/shops/by-number/{shop['shop_number']}", expect=(200,))
