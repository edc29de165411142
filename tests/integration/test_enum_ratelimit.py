"""Rate limits on anonymous lookups (issue 13): per address AND global, held across gateway
instances through the machine's Redis, answered 429 with ``Retry-After`` and the envelope, and
never a failed request when Redis is away (the gateway limits in its own memory instead)."""

from __future__ import annotations

import logging
import secrets
import socket

import pytest
import requests

pytestmark = pytest.mark.integration

SLOW = 1  # tokens per minute: nothing refills during a test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gateways(container_factory, service_config, start_service):
    """``make(n, **limits)``: n gateway instances sharing one fresh Redis key prefix."""
    from gateway.service import GatewayService

    start_service("shop")  # answers the by-number lookups (404: no such shop)
    prefix = f"xprl-test-{secrets.token_hex(6)}"

    def make(n: int = 2, redis_url: str | None = None, trusted: str = "", **groups) -> list:
        urls = []
        for _ in range(n):
            port = free_port()
            overrides: dict = {
                "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
                "XIAOPU_SECRET_KEY": "k" * 32,
                "XIAOPU_TRUSTED_PROXIES": trusted,
                "RATE_LIMITS": {"prefix": prefix, **groups},
            }
            if redis_url:
                overrides["XIAOPU_REDIS_URL"] = redis_url
            container = container_factory(GatewayService, service_config("gateway", **overrides))
            container.start()
            urls.append(f"http://127.0.0.1:{port}")
        return urls

    return make


def lookup(url: str, number: str = "000001", **headers) -> requests.Response:
    return requests.get(f"{url}/api/v1/shops/by-number/{number}", headers=headers, timeout=10)


def test_the_per_address_limit_holds_across_two_gateway_instances(gateways):
    a, b = gateways(
        2,
        shop_lookup=f"address_burst=6,address_per_minute={SLOW},global_burst=1000",
    )
    answers = [lookup(url).status_code for url in (a, b) * 3]  # 3 each, 6 in all
    assert answers == [404] * 6  # the lookups ran (no such shop)
    for url in (a, b):  # the address's bucket is empty on BOTH instances
        refused = lookup(url)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["Content-Type"].startswith("application/json")
        error = refused.json()["error"]
        assert error["code"] == "rate_limited" and error["details"]["limit"] == "shop_lookup"
        assert error["details"]["retry_after"] == int(refused.headers["Retry-After"])
    # another group has its own buckets: registering still goes through (to validation)
    assert requests.post(f"{a}/api/v1/members", json={}, timeout=10).status_code == 422


def test_the_global_limit_holds_across_addresses_and_instances(gateways):
    """Behind a trusted proxy every forwarded address is its own client, each under its own
    limit; all of them together still stop at the global one."""
    a, b = gateways(
        2,
        trusted="127.0.0.1/32",
        shop_lookup=f"address_burst=100,global_burst=5,global_per_minute={SLOW}",
    )
    codes = [
        lookup(url, **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code
        for i, url in enumerate((a, b, a, b, a, b, a))
    ]
    assert codes == [404] * 5 + [429] * 2


def test_rotating_forwarded_for_from_an_untrusted_peer_changes_nothing(gateways):
    (a,) = gateways(1, shop_lookup=f"address_burst=3,address_per_minute={SLOW}")
    codes = [lookup(a, **{"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(1, 6)]
    assert codes == [404, 404, 404, 429, 429]  # all counted against the socket peer


def test_without_redis_the_gateway_limits_in_memory_and_never_fails_a_request(gateways, caplog):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
        (a,) = gateways(1, redis_url=dead, shop_lookup=f"address_burst=3,address_per_minute={SLOW}")
        codes = [lookup(a).status_code for _ in range(5)]
    assert codes == [404, 404, 404, 429, 429]
    assert any("unreachable" in r.getMessage() for r in caplog.records)
