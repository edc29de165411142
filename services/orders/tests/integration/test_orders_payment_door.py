"""The payment door (issue 12): no built-in secret, no forged callbacks, the sandbox ``/pay``
shortcut only where it is configured, and a payment id that belongs to one order."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import eventlet
import orders_support as sup
import pytest
import requests

from orders.payments import SIGNATURE_HEADER, SandboxProvider, sign

ROOT = Path(__file__).resolve().parents[4]
BUYER = 41
ADDRESS = {"name": "张三", "phone": "13812345678", "line": "上海市黄浦区某路1号"}
# A secret is printable ASCII without spaces; anything shorter than 4 characters is no secret.
SECRET_LIKE = re.compile(r"^[\x21-\x7e]{4,200}$")
# the public default this repository used to ship (issue 12): refused like everything else
OLD_DEFAULT = "xiaopu-sandbox-secret"


def repository_strings() -> set[str]:
    """Every string literal of the repository's Python sources and every value (and
    ``${VAR:default}`` default) of its YAML files that looks like a secret."""
    found: set[str] = {OLD_DEFAULT}
    skip = {".venv", "var", ".git", "node_modules"}
    for path in ROOT.rglob("*.py"):
        if skip & set(path.relative_to(ROOT).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value.strip())
    for path in list(ROOT.rglob("*.yml")) + list(ROOT.rglob("*.yaml")):
        if skip & set(path.relative_to(ROOT).parts):
            continue
        text = path.read_text(encoding="utf-8")
        found.update(m.group(1).strip() for m in re.finditer(r"\$\{[A-Z0-9_]+:([^}]*)\}", text))
        found.update(
            m.group(1).strip().strip("'\"") for m in re.finditer(r":\s*([^\s#][^#\n]*)", text)
        )
    return {s for s in found if SECRET_LIKE.match(s)}


def checkout(env, items, buyer=BUYER):
    body = {"items": [{"product_id": p, "quantity": q} for p, q in items], "address": ADDRESS}
    resp = env.post("/api/v1/orders", json=body, role="member", sub=buyer)
    assert resp.status_code == 201, resp.text
    return resp.json()["orders"][0]


def deliver(env, raw: bytes, signature: str) -> requests.Response:
    return requests.post(
        env.url + "/api/v1/payments/callback",
        data=raw,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
        timeout=30,
    )


def status_of(env, order) -> str:
    return env.get(f"/api/v1/orders/{order['id']}", role="member", sub=BUYER).json()["status"]


def test_a_callback_signed_with_any_string_of_the_repository_is_refused(
    env, catalog_world, tmp_path, monkeypatch
):
    from scripts.platform import payment_env

    # the platform's secret generated the way `make run` does it (var/payment.secret)
    monkeypatch.delenv("PAYMENT_SANDBOX_SECRET", raising=False)
    generated = payment_env(tmp_path, {})["PAYMENT_SANDBOX_SECRET"]
    assert (tmp_path / "payment.secret").read_text().strip() == generated
    env.restart_orders(PAYMENT_SANDBOX_SECRET=generated)
    order = checkout(env, [(101, 1)])
    raw, _ = SandboxProvider(generated).build_callback(order["id"], order["total_fen"], "p-scan")
    candidates = sorted(repository_strings())
    assert generated not in candidates
    assert len(candidates) > 500, "the scan found too little: is ROOT the repository?"

    def forged(secret: str) -> tuple[str, int, str]:
        resp = deliver(env, raw, sign(secret, raw))
        return secret, resp.status_code, resp.json()["error"]["code"]

    answers = list(eventlet.GreenPool(8).imap(forged, candidates))
    accepted = [(s, code) for s, code, _ in answers if code != 401]
    assert accepted == [], f"callbacks signed with repository strings were not refused: {accepted}"
    assert {c for _, _, c in answers} == {"bad_signature"}
    assert status_of(env, order) == "created"
    # ... while the generated secret is the one that works
    ok = deliver(env, raw, sign(generated, raw))
    assert ok.status_code == 200 and ok.json()["status"] == "paid"


def test_without_a_configured_secret_every_callback_is_refused(env, catalog_world):
    env.restart_orders(PAYMENT_SANDBOX_SECRET="")
    order = checkout(env, [(101, 1)])
    raw = json.dumps(
        {
            "payment_id": "p-empty",
            "order_id": order["id"],
            "amount_fen": order["total_fen"],
            "status": "succeeded",
        }
    ).encode()
    for signature in (sign("", raw), "00" * 32):
        resp = deliver(env, raw, signature)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "payment_provider_not_configured"
    paid = env.post(f"/api/v1/orders/{order['id']}/pay", role="member", sub=BUYER)
    assert paid.status_code == 401
    assert status_of(env, order) == "created"


def test_a_payment_id_belongs_to_one_order(env, catalog_world):
    sandbox = SandboxProvider(env.orders.config["PAYMENT_SANDBOX_SECRET"])
    a, b = checkout(env, [(101, 1)]), checkout(env, [(101, 2)])
    first = deliver(env, *sandbox.build_callback(a["id"], a["total_fen"], "pay-A"))
    assert first.status_code == 200 and first.json()["status"] == "paid"
    # the same payment id presented for another order: refused, recorded, B stays unpaid
    raw_b, sig_b = sandbox.build_callback(b["id"], b["total_fen"], "pay-A")
    reused = deliver(env, raw_b, sig_b)
    assert reused.status_code == 409, reused.text
    assert reused.json()["error"]["code"] == "payment_id_conflict"
    assert status_of(env, b) == "created"
    # the same id for its own order stays a duplicate: 200, nothing changes
    again = deliver(env, *sandbox.build_callback(a["id"], a["total_fen"], "pay-A"))
    assert again.status_code == 200 and again.json().get("duplicate") is True
    # operators see the conflict
    listed = env.get("/api/v1/admin/payment-conflicts", role="admin")
    assert listed.status_code == 200, listed.text
    (row,) = listed.json()["items"]
    assert (row["payment_id"], row["order_id_claimed"], row["order_id_owning"]) == (
        "pay-A",
        b["id"],
        a["id"],
    )
    assert row["amount_fen"] == b["total_fen"] and row["provider"] == "sandbox"
    assert json.loads(row["raw_callback"]) == json.loads(raw_b) and row["at"]
    assert env.get("/api/v1/admin/payment-conflicts", role="member", sub=BUYER).status_code == 403
    sup.wait_for(lambda: len(sup.events("order_paid")) >= 1)
    assert [e["data"]["order_id"] for e in sup.events("order_paid")] == [a["id"]]


@pytest.mark.parametrize(
    "settings, exists",
    [
        ({"XIAOPU_TEST_MODE": 0}, False),
        ({"XIAOPU_TEST_MODE": 0, "PAYMENT_PROVIDER": "sandbox"}, False),
        (
            {"XIAOPU_TEST_MODE": 0, "PAYMENT_PROVIDER": "sandbox", "PAYMENT_SANDBOX_ENABLED": 1},
            True,
        ),
        (
            {
                "XIAOPU_TEST_MODE": 0,
                "XIAOPU_ENV": "production",
                "PAYMENT_PROVIDER": "acme",
                "PAYMENT_PROVIDER_SECRET": "a-real-secret",
            },
            False,
        ),
    ],
)
def test_the_sandbox_pay_route_exists_only_where_configured(
    env, catalog_world, container_factory, service_config, settings, exists
):
    from gateway.service import GatewayService
    from scripts.launcher import free_port

    port = free_port()
    config = service_config(
        "gateway",
        WEB_SERVER_ADDRESS=f"127.0.0.1:{port}",
        XIAOPU_ADMIN_TOKEN=env.gateway.admin_token,
        XIAOPU_SECRET_KEY=env.gateway.container.config["XIAOPU_SECRET_KEY"],
        **settings,
    )
    container_factory(GatewayService, config).start()
    url = f"http://127.0.0.1:{port}"
    order = checkout(env, [(101, 1)])
    paid = requests.post(
        f"{url}/api/v1/orders/{order['id']}/pay", headers=env.h("member", BUYER), timeout=30
    )
    spec = requests.get(f"{url}/api/v1/openapi.json", timeout=30).json()
    listed = "/api/v1/orders/{order_id}/pay" in spec["paths"]
    if exists:
        assert paid.status_code == 200 and paid.json()["status"] == "paid", paid.text
        assert listed
    else:
        assert paid.status_code == 404 and paid.json()["error"]["code"] == "route_not_found"
        assert not listed
        assert "/api/v1/payments/callback" in spec["paths"]
        assert status_of(env, order) == "created"


def test_orders_refuses_the_sandbox_shortcut_when_it_is_not_configured(env, catalog_world):
    """Behind the gateway too: the orders service itself answers 404 for ``pay``."""
    env.restart_orders(XIAOPU_TEST_MODE=0)
    order = checkout(env, [(101, 1)])
    paid = env.post(f"/api/v1/orders/{order['id']}/pay", role="member", sub=BUYER)
    assert paid.status_code == 404 and paid.json()["error"]["code"] == "route_not_found"
    assert status_of(env, order) == "created"
