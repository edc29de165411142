"""Who is asking (gateway/client.py): the client address only from trusted proxies, the
visitor id only when the gateway signed it; and which routes are rate limited."""

from __future__ import annotations

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gateway.client import ClientIdentity, parse_proxies

pytestmark = pytest.mark.unit

SECRET = b"s" * 32


def request(peer: str, headers: dict | None = None, cookies: dict | None = None) -> Request:
    builder = EnvironBuilder(
        path="/s/ABCD", headers=headers or {}, environ_base={"REMOTE_ADDR": peer}
    )
    for name, value in (cookies or {}).items():
        builder.headers.add("Cookie", f"{name}={value}")
    return Request(builder.get_environ())


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy():
    nobody = ClientIdentity((), SECRET)
    assert nobody.address(request("203.0.113.5", {"X-Forwarded-For": "1.2.3.4"})) == "203.0.113.5"
    proxied = ClientIdentity(parse_proxies("10.0.0.0/8, 192.168.1.1"), SECRET)
    # an untrusted peer's header counts for nothing, even with trusted proxies configured
    assert proxied.address(request("203.0.113.5", {"X-Forwarded-For": "1.2.3.4"})) == (
        "203.0.113.5"
    )
    # behind the proxy: the nearest hop the proxies did not add (a spoofed left part is skipped)
    forwarded = {"X-Forwarded-For": "6.6.6.6, 198.51.100.7, 10.1.2.3"}
    assert proxied.address(request("10.0.0.1", forwarded)) == "198.51.100.7"
    assert proxied.address(request("10.0.0.1", {"X-Forwarded-For": "garbage, 10.9.9.9"})) == (
        "10.9.9.9"
    )
    assert proxied.address(request("10.0.0.1")) == "10.0.0.1"
    with pytest.raises(SystemExit):
        parse_proxies("10.0.0.0/33")


def test_only_a_visitor_id_the_gateway_signed_is_kept():
    client = ClientIdentity((), SECRET)
    issued, new = client.visitor(request("203.0.113.5"))
    assert new and len(issued) == 22
    signed = client.sign(issued)
    assert client.visitor(request("203.0.113.5", cookies={"xp_vid": signed})) == (issued, False)
    assert client.visitor(request("203.0.113.5", {"X-Xiaopu-Visitor": signed})) == (issued, False)
    # unsigned, forged, or signed with another key: ignored, a new id is issued
    other_key = ClientIdentity((), b"o" * 32).sign(issued)
    for forged in (issued, f"{issued}.{'A' * 22}", other_key, "visitor-000001-abcdef"):
        fresh, new = client.visitor(request("203.0.113.5", cookies={"xp_vid": forged}))
        assert new and fresh != issued
        assert client.known_visitor(request("203.0.113.5", cookies={"xp_vid": forged})) is None


def test_every_anonymous_lookup_route_is_rate_limited():
    import gateway.service  # noqa: F401  (registers every route)
    from gateway.api import ROUTES

    unlimited = {(s.method, s.path) for s in ROUTES if s.auth is None and s.limit is None}
    # platform plumbing and the signed payment callback are not lookups
    assert unlimited == {
        ("GET", "/api/v1/health"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/echo"),
        ("GET", "/api/v1/echo/local"),
        ("GET", "/api/v1/echo/orders"),
        ("POST", "/api/v1/payments/callback"),
        ("GET", "/static/<name>"),  # our own CSS and JavaScript, cached by browsers
    }
    limited = {s.path: s.limit for s in ROUTES if s.limit}
    assert limited["/api/v1/shops/by-number/<shop_number>"] == "shop_lookup"
    assert limited["/api/v1/shares/resolve"] == "share_resolve"
    assert limited["/s/<code>"] == "landing"
