"""The real payouts service in a container, fed by events (nameko standalone dispatcher), and the
real gateway's payouts endpoints; shop is replaced by a small fake nameko service."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from nameko.events import event_handler as nameko_event_handler
from nameko.rpc import rpc
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy

from shared.errors import NotFound
from shared.testing import wait_for

T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
SHOPS = {11: 501, 12: 502}  # shop id → keeper member id
SETTLED: list[dict] = []


class FakeShop:
    name = "shop"

    @rpc
    def get_shop(self, shop_id):
        if int(shop_id) not in SHOPS:
            raise NotFound(f"shop {shop_id} not found")
        return {
            "id": int(shop_id),
            "member_id": SHOPS[int(shop_id)],
            "shop_number": "123456",
            "name": "阿花",
            "display_name": "阿花小铺",
            "status": "active",
            "level": "newcomer",
            "level_bonus_bps": 0,
        }

    @rpc
    def health(self):
        return {"status": "ok"}


class SettledListener:
    name = "settled_listener"

    @nameko_event_handler("payouts", "commission_settled")
    def on_settled(self, event):
        SETTLED.append(event)


def envelope(event_type, data, event_id=None):
    return {
        "id": event_id or str(uuid.uuid4()),
        "type": event_type,
        "version": 1,
        "source": "test",
        "occurred_at": T0.isoformat(),
        "correlation_id": None,
        "data": data,
    }


def paid(order_id, shop_id, amount, bps=1000, self_referral=False, supplier_id=77):
    return envelope(
        "order_paid",
        {
            "order_id": order_id,
            "buyer_id": 9,
            "supplier_id": supplier_id,
            "shop_id": shop_id,
            "share_id": None,
            "self_referral": self_referral,
            "paid_fen": amount,
            "lines": [
                {
                    "product_id": 1,
                    "title": "茶",
                    "quantity": 1,
                    "unit_price_fen": amount,
                    "amount_fen": amount,
                    "commission_bps": bps,
                }
            ],
            "paid_at": T0.isoformat(),
        },
    )


def refunded(order_id, shop_id, paid_fen, total, supplier_id=77):
    return envelope(
        "order_refunded",
        {
            "order_id": order_id,
            "refund_id": total,
            "supplier_id": supplier_id,
            "shop_id": shop_id,
            "amount_fen": total,
            "paid_fen": paid_fen,
            "refunded_total_fen": total,
            "at": (T0 + timedelta(days=1)).isoformat(),
        },
    )


def state(event_type, order_id, shop_id, at, supplier_id=77):
    """order_received carries the end of orders' after-sales window (15 days), as orders
    sends it."""
    data = {
        "order_id": order_id,
        "supplier_id": supplier_id,
        "shop_id": shop_id,
        "status": event_type.split("_")[1],
        "at": at.isoformat(),
    }
    if event_type == "order_received":
        data["after_sales_until"] = (at + timedelta(days=15)).isoformat()
    return envelope(event_type, data)


@pytest.fixture
def platform(start_service, container_factory, service_config, gateway):
    payouts = start_service("payouts")
    config = service_config("gateway")
    shop = container_factory(FakeShop, config)
    shop.start()
    dispatch = event_dispatcher(config)
    SETTLED.clear()

    def send(env):
        dispatch("orders" if env["type"].startswith("order_") else "shop", env["type"], env)

    return payouts, send, config


def earnings(gateway, shop_id, role="member", sub=None):
    sub = SHOPS.get(shop_id) if sub is None else sub
    return requests.get(
        f"{gateway.url}/api/v1/shops/{shop_id}/earnings",
        headers=gateway.headers(role, sub) if role else {},
        timeout=10,
    )


def test_keeper_earns_from_order_events_and_is_paid_exactly_once(
    platform, gateway, container_factory
):
    payouts, send, config = platform
    listener = container_factory(SettledListener, config)
    listener.start()
    first = paid(1001, 11, 20000)
    send(first)
    send(first)  # redelivered: accrues once
    send(refunded(1002, 11, 10000, 4000))  # the refund overtakes its payment
    send(paid(1002, 11, 10000))
    send(paid(1003, 11, 5000, self_referral=True))  # the keeper's own purchase earns nothing
    send(paid(1004, None, 8000))  # no shop, no commission

    def settled_view():
        body = earnings(gateway, 11).json()
        return body if len(body["lines"]) == 3 and body["pending_fen"] == 2000 + 600 else None

    body = wait_for(settled_view)
    lines = {ln["order_id"]: ln for ln in body["lines"]}
    assert lines[1002]["refunded_fen"] == 4000 and lines[1002]["commission_fen"] == 1000
    assert lines[1003]["commission_fen"] == 0
    assert (body["settleable_fen"], body["paid_fen"]) == (0, 0)

    assert earnings(gateway, 11, sub=SHOPS[12]).status_code == 404  # another keeper's
    assert earnings(gateway, 11, role=None).status_code == 401
    assert earnings(gateway, 11, role="admin").status_code == 200

    send(state("order_received", 1001, 11, T0 + timedelta(days=2)))
    send(state("order_completed", 1002, 11, T0 + timedelta(days=3)))
    admin = gateway.headers("admin")
    wait_for(
        lambda: (
            requests.post(
                f"{gateway.url}/api/v1/admin/settlements/run",
                headers=admin,
                timeout=30,
                json={"as_of": (T0 + timedelta(days=10)).isoformat()},
            ).json()["count"]
            >= 1
        )
    )
    r = requests.post(
        f"{gateway.url}/api/v1/admin/settlements/run",
        headers=admin,
        timeout=30,
        json={"as_of": (T0 + timedelta(days=17)).isoformat()},
    )
    assert r.status_code == 200, r.text
    assert [o["order_id"] for o in r.json()["settled"]] == [1001]
    again = requests.post(
        f"{gateway.url}/api/v1/admin/settlements/run",
        headers=admin,
        json={"as_of": (T0 + timedelta(days=17)).isoformat()},
        timeout=30,
    )
    assert again.json()["count"] == 0
    body = earnings(gateway, 11).json()
    assert (body["pending_fen"], body["settleable_fen"]) == (0, 2600)

    run = requests.post(
        f"{gateway.url}/api/v1/admin/payouts/run", headers=admin, json={}, timeout=30
    )
    assert run.status_code == 200, run.text
    assert [(p["shop_id"], p["amount_fen"], p["status"]) for p in run.json()["payouts"]] == [
        (11, 2600, "paid")
    ]
    assert run.json()["total_fen"] == 2600
    rerun = requests.post(
        f"{gateway.url}/api/v1/admin/payouts/run", headers=admin, json={}, timeout=30
    ).json()
    assert rerun["payouts"] == [] and rerun["total_fen"] == 0
    body = earnings(gateway, 11).json()
    assert (body["pending_fen"], body["settleable_fen"], body["paid_fen"]) == (0, 0, 2600)

    books = requests.get(f"{gateway.url}/api/v1/admin/books", headers=admin, timeout=10).json()
    assert books["balanced"] and books["total_fen"] == 0

    csv = requests.get(
        f"{gateway.url}/api/v1/shops/11/statements/2026-10.csv",
        headers=gateway.headers("member", SHOPS[11]),
        timeout=10,
    )
    assert csv.status_code == 200 and csv.headers["Content-Type"].startswith("text/csv")
    assert "opening_balance" in csv.text and ",settlement," in csv.text
    bad = requests.get(
        f"{gateway.url}/api/v1/shops/11/statements/2026-13.csv",
        headers=gateway.headers("member", SHOPS[11]),
        timeout=10,
    )
    assert bad.status_code == 422

    got = wait_for(
        lambda: (
            {
                e["data"]["order_id"]: e["data"]
                for e in SETTLED
                if e["data"]["order_id"] in (1001, 1002)
            }
            if len({e["data"]["order_id"] for e in SETTLED}) >= 2
            else None
        )
    )
    assert got[1001]["amount_fen"] == 2000 and got[1002]["amount_fen"] == 600
    assert got[1002]["sales_fen"] == 6000
    with ServiceRpcProxy("payouts", config) as proxy:
        assert proxy.settled_sales(T0.strftime("%Y-%m")) == {"11": 20000 + 6000}


def test_failed_transfer_is_retried_by_the_next_run(platform, gateway):
    payouts, send, config = platform
    send(
        envelope(
            "level_changed",
            {
                "shop_id": 12,
                "month": "2026-09",
                "old_level": "newcomer",
                "new_level": "super",
                "bonus_bps": 200,
            },
        )
    )
    wait_for(lambda: earnings(gateway, 12).json()["level_bonus_bps"] == 200)
    with ServiceRpcProxy("payouts", config) as proxy:
        proxy.configure_sandbox({"fail": "keeper:12"})
    send(paid(2001, 12, 10000))
    send(state("order_completed", 2001, 12, T0 + timedelta(days=1)))
    wait_for(lambda: earnings(gateway, 12).json()["pending_fen"] == 1200)
    admin = gateway.headers("admin")

    def settle():
        r = requests.post(
            f"{gateway.url}/api/v1/admin/settlements/run", headers=admin, json={}, timeout=30
        )
        return r.json()["count"] or earnings(gateway, 12).json()["settleable_fen"]

    wait_for(settle)
    run = requests.post(
        f"{gateway.url}/api/v1/admin/payouts/run", headers=admin, json={}, timeout=30
    ).json()
    assert [(p["shop_id"], p["status"]) for p in run["payouts"]] == [(12, "failed")]
    assert earnings(gateway, 12).json()["settleable_fen"] == 1200
    with ServiceRpcProxy("payouts", config) as proxy:
        proxy.configure_sandbox({})
    run = requests.post(
        f"{gateway.url}/api/v1/admin/payouts/run", headers=admin, json={}, timeout=30
    ).json()
    assert [(p["shop_id"], p["amount_fen"], p["status"]) for p in run["payouts"]] == [
        (12, 1200, "paid")
    ]
    body = earnings(gateway, 12).json()
    assert (body["settleable_fen"], body["paid_fen"]) == (0, 1200)


def test_admin_endpoints_refuse_keepers_and_bad_input(platform, gateway):
    r = requests.post(
        f"{gateway.url}/api/v1/admin/payouts/run",
        headers=gateway.headers("member", 501),
        json={},
        timeout=10,
    )
    assert r.status_code == 403
    r = requests.post(
        f"{gateway.url}/api/v1/admin/settlements/run",
        headers=gateway.headers("admin"),
        json={"as_of": "yesterday"},
        timeout=10,
    )
    assert r.status_code == 422
    r = requests.get(
        f"{gateway.url}/api/v1/shops/999/earnings",
        headers=gateway.headers("member", 501),
        timeout=10,
    )
    assert r.status_code == 404
