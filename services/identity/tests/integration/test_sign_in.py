"""Sign-in through the real gateway and the real identity service (API.md v1.1 "Sign-in").

shop and catalog are replaced by small fake nameko services answering the lookups identity
needs (``member_by_phone``, ``supplier_by_phone``) and shop's ``register_member``.
"""

import re
import uuid
from datetime import timedelta

import pytest
import requests
from nameko.rpc import rpc

from shared import clock
from shared.errors import Conflict

MEMBERS: dict[str, int] = {}
SUPPLIERS: dict[str, int] = {}


class FakeShop:
    name = "shop"

    @rpc
    def member_by_phone(self, phone):
        found = MEMBERS.get(phone)
        return {"id": found} if found else None

    @rpc
    def register_member(self, data):
        if data["phone"] in MEMBERS:
            raise Conflict("this phone number is already registered", code="phone_taken")
        MEMBERS[data["phone"]] = 100 + len(MEMBERS)
        return {"id": MEMBERS[data["phone"]], "nickname": data["nickname"]}


class FakeCatalog:
    name = "catalog"

    @rpc
    def supplier_by_phone(self, phone):
        found = SUPPLIERS.get(phone)
        return {"id": found, "status": "active"} if found else None


@pytest.fixture
def gw(gateway, start_service, container_factory, service_config):
    MEMBERS.clear()
    SUPPLIERS.clear()
    cfg = service_config("gateway")
    for fake in (FakeShop, FakeCatalog):
        container_factory(fake, cfg).start()
    start_service("identity")
    return gateway


def phone() -> str:
    return "13" + str(uuid.uuid4().int)[:9]


def otp(gw, number, role="member", client=None):
    headers = {"X-Forwarded-For": client} if client else {}
    return requests.post(
        f"{gw.url}/api/v1/auth/otp",
        json={"phone": number, "role": role},
        headers=headers,
        timeout=10,
    )


def last_code(gw, number) -> str:
    resp = requests.get(
        f"{gw.url}/api/v1/admin/sandbox/messages",
        params={"to": number},
        headers=gw.headers("admin"),
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    text = resp.json()["items"][0]["text"]
    return re.search(r"\d{6}", text).group(0)


def login(gw, number, code, **extra):
    return requests.post(
        f"{gw.url}/api/v1/auth/login", json={"phone": number, "code": code, **extra}, timeout=10
    )


def wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


def test_a_member_signs_in_with_the_code_from_the_sandbox(gw):
    number = phone()
    MEMBERS[number] = 42
    resp = otp(gw, number)
    assert resp.status_code == 202 and resp.json() == {"expires_in": 300}
    messages = requests.get(
        f"{gw.url}/api/v1/admin/sandbox/messages", headers=gw.headers("admin"), timeout=10
    ).json()["items"]
    assert messages[0]["channel"] == "sms" and messages[0]["to"] == number
    resp = login(gw, number, last_code(gw, number))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["role"], body["id"]) == ("member", 42) and body["refresh_token"]
    me = requests.get(
        f"{gw.url}/api/v1/orders",
        headers={"Authorization": f"Bearer {body['token']}"},
        timeout=10,
    )
    assert me.status_code != 401  # the access token is accepted by the gateway


def test_a_supplier_signs_in_with_its_contact_phone(gw):
    number = phone()
    SUPPLIERS[number] = 9
    assert otp(gw, number, role="supplier").status_code == 202
    resp = login(gw, number, last_code(gw, number), role="supplier")
    assert resp.status_code == 200, resp.text
    assert (resp.json()["role"], resp.json()["id"]) == ("supplier", 9)


def test_a_new_member_registers_with_a_nickname_and_the_code(gw):
    number = phone()
    otp(gw, number)
    code = last_code(gw, number)
    refused = login(gw, number, code)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_code"
    resp = login(gw, number, code, nickname="小明")
    assert resp.status_code == 200, resp.text
    assert resp.json()["registered"] is True and MEMBERS[number] == resp.json()["id"]


def test_an_unknown_phone_is_answered_exactly_like_a_known_one(gw):
    known, unknown = phone(), phone()
    MEMBERS[known] = 7
    a, b = otp(gw, known), otp(gw, unknown)
    assert (a.status_code, a.json()) == (b.status_code, b.json()) == (202, {"expires_in": 300})
    right_for_unknown = login(gw, unknown, last_code(gw, unknown))
    wrong_for_known = login(gw, known, wrong(last_code(gw, known)))
    assert right_for_unknown.status_code == wrong_for_known.status_code == 401
    assert right_for_unknown.json() == wrong_for_known.json()


def test_a_code_works_once(gw):
    number = phone()
    MEMBERS[number] = 5
    otp(gw, number)
    code = last_code(gw, number)
    assert login(gw, number, code).status_code == 200
    again = login(gw, number, code)
    assert again.status_code == 401 and again.json()["error"]["code"] == "invalid_code"


def test_a_code_expires_after_five_minutes_of_platform_time(gw):
    number = phone()
    MEMBERS[number] = 5
    otp(gw, number)
    code = last_code(gw, number)
    # the services run in this process: the platform clock moves for identity too (the root
    # conftest resets it after the test)
    clock.set_now(clock.now() + timedelta(minutes=5, seconds=1))
    assert login(gw, number, code).status_code == 401


def test_five_wrong_guesses_kill_the_code(gw):
    number = phone()
    MEMBERS[number] = 5
    otp(gw, number)
    code = last_code(gw, number)
    for _ in range(5):
        assert login(gw, number, wrong(code)).status_code == 401
    assert login(gw, number, code).status_code == 401


# the test's client addresses arrive as X-Forwarded-For from the local "proxy"
@pytest.mark.gateway_config(XIAOPU_TRUSTED_PROXIES="127.0.0.1/32")
def test_codes_are_rate_limited_per_phone_and_per_address_with_retry_after(gw):
    number = phone()
    assert otp(gw, number).status_code == 202
    resp = otp(gw, number)
    assert resp.status_code == 429 and resp.json()["error"]["code"] == "too_many_codes"
    assert 0 < int(resp.headers["Retry-After"]) <= 60
    client = f"203.0.113.{uuid.uuid4().int % 250}"
    answers = [otp(gw, phone(), client=client).status_code for _ in range(31)]
    assert answers[:30] == [202] * 30 and answers[30] == 429


def test_refresh_rotates_and_reuse_of_a_rotated_token_revokes_the_session(gw):
    number = phone()
    MEMBERS[number] = 11
    otp(gw, number)
    first = login(gw, number, last_code(gw, number)).json()
    rotated = requests.post(
        f"{gw.url}/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}, timeout=10
    )
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"] and second["token"]
    replay = requests.post(
        f"{gw.url}/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}, timeout=10
    )
    assert replay.status_code == 401
    after = requests.post(
        f"{gw.url}/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}, timeout=10
    )
    assert after.status_code == 401  # the whole family went with the replay


def test_logout_revokes_the_refresh_token(gw):
    number = phone()
    MEMBERS[number] = 12
    otp(gw, number)
    session = login(gw, number, last_code(gw, number)).json()
    resp = requests.post(
        f"{gw.url}/api/v1/auth/logout",
        json={"refresh_token": session["refresh_token"]},
        headers={"Authorization": f"Bearer {session['token']}"},
        timeout=10,
    )
    assert resp.status_code == 204
    refused = requests.post(
        f"{gw.url}/api/v1/auth/refresh",
        json={"refresh_token": session["refresh_token"]},
        timeout=10,
    )
    assert refused.status_code == 401
    anonymous = requests.post(f"{gw.url}/api/v1/auth/logout", json={}, timeout=10)
    assert anonymous.status_code == 401


def test_sandbox_messages_need_the_admin(gw):
    resp = requests.get(f"{gw.url}/api/v1/admin/sandbox/messages", timeout=10)
    assert resp.status_code == 401
    resp = requests.get(
        f"{gw.url}/api/v1/admin/sandbox/messages", headers=gw.headers("member", 1), timeout=10
    )
    assert resp.status_code == 403
