"""The gateway's ``Idempotency-Key`` (API.md): a repeated mutating request with the same key is
answered with the first answer, replayed, and runs once; a new key is a new request."""

import requests

SUPPLIER = {
    "name": "幂等供应商",
    "registered_capital_fen": 200_000_000,
    "general_taxpayer": True,
    "brand_authorization_levels": 1,
    "contact": {"phone": "13800001111", "wechat": "idem-sup", "email": "idem@example.com"},
}


def test_a_repeated_idempotency_key_replays_the_first_answer_and_runs_once(gateway, start_service):
    start_service("catalog")
    resp = requests.post(f"{gateway.url}/api/v1/suppliers", json=SUPPLIER, timeout=10)
    assert resp.status_code == 201, resp.text
    supplier = resp.json()
    auth = {"Authorization": f"Bearer {supplier['token']}"}
    deposit = f"{gateway.url}/api/v1/suppliers/{supplier['id']}/deposit"

    def pay(key: str) -> requests.Response:
        return requests.post(
            deposit,
            json={"amount_fen": 1_000},
            headers={**auth, "Idempotency-Key": key},
            timeout=10,
        )

    def deposited() -> int:
        got = requests.get(
            f"{gateway.url}/api/v1/suppliers/{supplier['id']}", headers=auth, timeout=10
        )
        assert got.status_code == 200, got.text
        return got.json()["deposit_fen"]

    first = pay("deposit-1")
    assert first.status_code == 200, first.text
    assert first.json()["deposit_fen"] == 1_000
    assert "Idempotent-Replayed" not in first.headers

    again = pay("deposit-1")
    assert again.status_code == first.status_code
    assert again.content == first.content  # the very same answer ...
    assert again.headers["Idempotent-Replayed"] == "true"
    assert deposited() == 1_000  # ... and the deposit was paid once

    other = pay("deposit-2")  # a new key is a new payment
    assert other.status_code == 200, other.text
    assert "Idempotent-Replayed" not in other.headers
    assert other.json()["deposit_fen"] == 2_000
    assert deposited() == 2_000
