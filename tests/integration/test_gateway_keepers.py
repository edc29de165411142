"""A keeper (掌柜) sees only their own shop's money (API.md): the gateway checks the token's
member against the shop's keeper before it asks payouts."""

import itertools

import requests

from shared.ids import MAX_INT_ID

_phones = itertools.count(13900002000)


def keeper_with_shop(gateway, name: str) -> tuple[dict, int]:
    member = requests.post(
        f"{gateway.url}/api/v1/members",
        json={
            "nickname": name,
            "phone": str(next(_phones)),
            "credit_score": 750,
            "real_name_verified": True,
        },
        timeout=10,
    )
    assert member.status_code == 201, member.text
    headers = {"Authorization": f"Bearer {member.json()['token']}"}
    shop = requests.post(
        f"{gateway.url}/api/v1/shops", json={"name": f"{name}的小铺"}, headers=headers, timeout=10
    )
    assert shop.status_code == 201, shop.text
    return headers, shop.json()["id"]


def test_a_keeper_cannot_read_another_shops_earnings_or_statements(gateway, start_service):
    start_service("shop")
    start_service("payouts")
    alice, alice_shop = keeper_with_shop(gateway, "阿花")
    bob, bob_shop = keeper_with_shop(gateway, "阿波")

    own = requests.get(f"{gateway.url}/api/v1/shops/{alice_shop}/earnings", headers=alice)
    assert own.status_code == 200, own.text  # the route works for the shop's own keeper ...

    for path in (
        f"/api/v1/shops/{bob_shop}/earnings",
        f"/api/v1/shops/{bob_shop}/statements/2026-11.csv",
    ):
        resp = requests.get(f"{gateway.url}{path}", headers=alice, timeout=10)
        assert resp.status_code == 404, (path, resp.status_code, resp.text)  # ... not for others
        assert resp.json()["error"]["code"] == "shop_not_found"
        # ... and what they get is what a shop that does not exist answers (ids are random)
        missing = MAX_INT_ID if MAX_INT_ID not in (alice_shop, bob_shop) else 1
        absent = requests.get(
            f"{gateway.url}{path.replace(str(bob_shop), str(missing))}", headers=alice, timeout=10
        )
        assert resp.content.replace(str(bob_shop).encode(), b"<id>") == absent.content.replace(
            str(missing).encode(), b"<id>"
        )

    admin = requests.get(
        f"{gateway.url}/api/v1/shops/{bob_shop}/earnings", headers=gateway.headers("admin")
    )
    assert admin.status_code == 200, admin.text
    assert (
        requests.get(
            f"{gateway.url}/api/v1/shops/{bob_shop}/earnings", headers=bob, timeout=10
        ).status_code
        == 200
    )
