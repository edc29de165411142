"""The gateway's contract for bad input and broken services (API.md conventions)."""

import time

import jwt
import requests

from shared.config import SERVICES
from shared.testing import wait_for


def test_health_reports_every_service_ok(gateway, start_service):
    for svc in SERVICES:
        start_service(svc)
    resp = requests.get(f"{gateway.url}/api/v1/health", timeout=10)
    assert resp.status_code == 200
    assert resp.json()["services"] == {s: "ok" for s in SERVICES}


def test_a_stopped_service_makes_health_degraded_not_hang(gateway, start_service):
    for svc in ("catalog", "shop", "share", "orders", "identity"):
        start_service(svc)
    started = time.monotonic()
    resp = requests.get(f"{gateway.url}/api/v1/health", timeout=30)
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "degraded"
    assert body["services"]["payouts"] == "down"
    assert body["services"]["catalog"] == "ok"
    assert time.monotonic() - started < 15


def test_unknown_route_is_a_json_404(gateway):
    resp = requests.get(f"{gateway.url}/api/v1/no-such-thing", timeout=5)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "route_not_found"


def test_clock_needs_admin_token(gateway, start_service):
    resp = requests.post(f"{gateway.url}/api/v1/admin/clock", json={"now": "2030-01-01T00:00:00Z"})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "missing_token"
    forged = jwt.encode(
        {"role": "member", "sub": "1", "exp": int(time.time()) + 60},
        "wrong-" + "k" * 32,
        algorithm="HS256",
    )
    resp = requests.post(
        f"{gateway.url}/api/v1/admin/clock", json={}, headers={"Authorization": f"Bearer {forged}"}
    )
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_token"
    resp = requests.post(
        f"{gateway.url}/api/v1/admin/clock", json={}, headers=gateway.headers("member", 1)
    )
    assert resp.status_code == 403


def test_clock_moves_every_service_in_test_mode(gateway, start_service):
    for svc in SERVICES:
        start_service(svc)
    resp = requests.post(
        f"{gateway.url}/api/v1/admin/clock",
        json={"now": "2030-01-01T00:00:00Z"},
        headers=gateway.headers("admin"),
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["now"].startswith("2030-01-01T00:00")
    assert set(resp.json()["services"]) == set(SERVICES)


def test_malformed_json_is_400(gateway):
    resp = requests.post(
        f"{gateway.url}/api/v1/admin/clock",
        data="{not json",
        headers={**gateway.headers("admin"), "Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "malformed_json"


def test_failed_validation_is_422_naming_the_field(gateway):
    resp = requests.post(
        f"{gateway.url}/api/v1/admin/clock", json={"now": 12}, headers=gateway.headers("admin")
    )
    assert resp.status_code == 422
    fields = [d["field"] for d in resp.json()["error"]["details"]]
    assert fields == ["now"]


def test_expired_token_is_401(gateway):
    token = jwt.encode(
        {"role": "member", "sub": "1", "exp": int(time.time()) - 5},
        gateway.tokens.secret,
        algorithm="HS256",
    )
    resp = requests.post(
        f"{gateway.url}/api/v1/admin/clock", json={}, headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "token_expired"


def test_openapi_lists_the_routes(gateway):
    doc = requests.get(f"{gateway.url}/api/v1/openapi.json", timeout=5).json()
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/health" in doc["paths"]
    assert "post" in doc["paths"]["/api/v1/admin/clock"]


def test_the_request_id_is_echoed_and_carried(gateway):
    resp = requests.get(f"{gateway.url}/api/v1/openapi.json", headers={"X-Request-Id": "req-42"})
    assert resp.headers["X-Request-Id"] == "req-42"
    assert requests.get(f"{gateway.url}/api/v1/openapi.json").headers["X-Request-Id"]


def test_a_request_to_a_dead_service_expires_instead_of_running_later(gateway, rabbit_config):
    """The gateway answers 503 within its deadline, and the request it published does not wait
    in the queue to be executed whenever the service comes back."""
    from kombu import Connection, Queue

    with Connection(rabbit_config["AMQP_URI"]) as conn:
        # a catalog queue exists (the service ran before) but nothing consumes it now
        Queue("rpc-catalog", exchange=None, durable=True)(conn.default_channel).declare()
        conn.default_channel.queue_bind("rpc-catalog", "nameko-rpc", "catalog.*")
        started = time.monotonic()
        resp = requests.get(f"{gateway.url}/api/v1/echo", timeout=30)
        assert resp.status_code == 503
        assert resp.json()["error"]["details"] == {"service": "catalog"}
        assert time.monotonic() - started < 15
        # the request expires in the queue (its TTL is the gateway's deadline) instead of
        # waiting there for the service to come back
        wait_for(
            lambda: conn.default_channel.queue_declare("rpc-catalog", passive=True)[1] == 0,
            timeout=10,
        )


def test_an_id_beyond_any_database_integer_is_a_404_not_a_500(gateway, start_service):
    start_service("payouts")
    resp = requests.get(
        f"{gateway.url}/api/v1/shops/9223372036854775809/earnings",
        headers=gateway.headers("admin"),
        timeout=10,
    )
    assert resp.status_code == 404
    assert resp.json()["error"]["details"] == {"field": "shop_id"}
