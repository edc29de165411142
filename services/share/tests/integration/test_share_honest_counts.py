"""Honest counts (issue 13): a client rotating visitor ids and X-Forwarded-For headers from one
address is held to the per-address visit limit. On the old main the same 300 fake visits were
all counted (every forged header looked like a new buyer)."""

import uuid

import pytest
import requests

from conftest import FAKE, FakeCatalog, FakeShop, Platform, add_product, add_shop, select

KEEPER = 12
BURST = 20  # the per-address burst configured for these tests (share's VisitLimits)
NEVER = 3600  # refill seconds: no token comes back during a test


@pytest.fixture
def counted(gateway, start_service, container_factory, service_config, rabbit_config):
    for table in FAKE.values():
        table.clear()
    config = service_config("gateway")
    for fake in (FakeCatalog, FakeShop):
        container_factory(fake, config).start()
    share = start_service(
        "share",
        RULES={
            "landing_cache_seconds": 0.3,
            "facts_ttl_seconds": 60,
            "address_burst": BURST,
            "address_refill_seconds": NEVER,
            "anonymous_burst": BURST,
            "anonymous_refill_seconds": NEVER,
            "visitor_refill_seconds": NEVER,
        },
    )
    platform = Platform(gateway, share, config, rabbit_config["vhost"])
    add_shop(7, KEEPER)
    add_product(101)
    select(7, 101)
    resp = requests.post(
        f"{platform.url}/api/v1/shares",
        json={"shop_id": 7, "product_id": 101},
        headers=gateway.headers("member", KEEPER),
        timeout=20,
    )
    assert resp.status_code == 201, resp.text
    return platform, resp.json()


def counted_visits(platform) -> int:
    platform.drained()  # every visit was handed over, admitted or throttled, and written
    resp = requests.get(
        f"{platform.url}/api/v1/shops/7/stats",
        headers=platform.gateway.headers("member", KEEPER),
        timeout=20,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["totals"]["visits"]


def test_forged_visitor_ids_and_forwarded_for_headers_count_once_per_address_burst(counted):
    platform, share = counted
    issued = set()
    for i in range(300):
        forged = f"forged-{i:06d}-{uuid.uuid4().hex[:8]}"
        resp = requests.get(
            share["url"],
            headers={
                "X-Forwarded-For": f"198.51.{i // 250}.{i % 250 + 1}",
                "X-Xiaopu-Visitor": forged,
            },
            cookies={"xp_vid": forged},
            timeout=20,
        )
        assert resp.status_code == 200  # the page is always served ...
        cookie = resp.cookies.get("xp_vid")
        assert cookie and not cookie.startswith(forged)  # ... with a signed id of our own
        issued.add(cookie)
    assert len(issued) == 300
    assert 1 <= counted_visits(platform) <= BURST  # ... but 300 fakes count as one address


def test_harvested_signed_ids_rotated_from_one_address_are_held_to_its_burst(counted):
    """Even ids the gateway really signed (a client can collect one per request) do not make
    one address many buyers: every visit also takes from the address's bucket."""
    platform, share = counted
    for i in range(300):
        resp = requests.get(
            share["url"],
            headers={"X-Forwarded-For": f"203.0.{i // 250}.{i % 250 + 1}"},
            cookies=platform.gateway.visitor_cookie(f"harvest-{i:06d}-{uuid.uuid4().hex[:7]}"),
            timeout=20,
        )
        assert resp.status_code == 200 and "xp_vid" not in resp.cookies  # a known visitor
    assert 1 <= counted_visits(platform) <= BURST
