"""Hostile input through the real gateway (issue 13): text that breaks storage or deceives a
reader, bodies too big or too deep, undeclared methods, page errors, loose contract corners."""

import re
import socket

import pytest
import requests

from shared.contracts.shop import MOBILE_PATTERN

ZERO_WIDTH_FLAGSHIP = "官\u200b方旗\u200d舰店"

SUPPLIER = {
    "name": "好物供应链",
    "registered_capital_fen": 100_000_000,
    "general_taxpayer": True,
    "contact": {"phone": "021-5555"},
}
PRODUCT = {
    "title": "好物",
    "category": "日用",
    "price_fen": 1000,
    "stock": 10,
    "commission_bps": 2000,
    "market_commission_bps": 1000,
    "reference_price_fen": 1200,
}
ADDRESS = {"name": "张三", "phone": "13800138000", "line": "上海市某路1号"}


def _with(body: dict, path: str, value) -> dict:
    """``body`` with the dotted ``path`` set to ``value`` (a copy)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in body.items()}
    node = out
    *parents, last = path.split(".")
    for p in parents:
        node = node[p]
    node[last] = value
    return out


# (method, path, role, body, field): a NUL in each human-text field is 422 naming the field
NUL_CASES = [
    ("POST", "/api/v1/suppliers", None, _with(SUPPLIER, "name", "好\x00物"), "name"),
    (
        "POST",
        "/api/v1/suppliers",
        None,
        _with(SUPPLIER, "contact.phone", "021\x00"),
        "contact.phone",
    ),
    ("POST", "/api/v1/products", "supplier", _with(PRODUCT, "title", "好\x00物"), "title"),
    ("POST", "/api/v1/products", "supplier", _with(PRODUCT, "brand", "a\x00"), "brand"),
    ("PATCH", "/api/v1/products/1", "supplier", {"description": "x\x00y"}, "description"),
    (
        "POST",
        "/api/v1/orders",
        "member",
        {"items": [{"product_id": 1, "quantity": 1}], "address": _with(ADDRESS, "line", "1\x00号")},
        "address.line",
    ),
    (
        "POST",
        "/api/v1/orders",
        "member",
        {"items": [{"product_id": 1, "quantity": 1}], "address": _with(ADDRESS, "name", "张\x00")},
        "address.name",
    ),
    (
        "POST",
        "/api/v1/orders/1/refunds",
        "member",
        {"amount_fen": 1, "reason": "坏\x00了"},
        "reason",
    ),
    (
        "POST",
        "/api/v1/orders/1/inquiries",
        "member",
        {"topic": "other", "text": "在\x00吗"},
        "text",
    ),
    (
        "POST",
        "/api/v1/orders/1/ship",
        "supplier",
        {"carrier": "顺\x00丰", "tracking_no": "1"},
        "carrier",
    ),
    (
        "POST",
        "/api/v1/orders/1/ship",
        "supplier",
        {"carrier": "顺丰", "tracking_no": "1\x00"},
        "tracking_no",
    ),
    (
        "POST",
        "/api/v1/members",
        None,
        {
            "nickname": "阿\x00花",
            "phone": "13800138000",
            "credit_score": 700,
            "real_name_verified": True,
        },
        "nickname",
    ),
    ("POST", "/api/v1/shops", "member", {"name": "阿花\x00"}, "name"),
    ("PUT", "/api/v1/shops/1/products/1", "member", {"reason": "好\x00用"}, "reason"),
]


def _headers(gateway, role):
    return gateway.headers(role, 1) if role else {}


@pytest.mark.parametrize(("method", "path", "role", "body", "field"), NUL_CASES)
def test_a_nul_in_human_text_is_422_naming_the_field(gateway, method, path, role, body, field):
    resp = requests.request(
        method, gateway.url + path, json=body, headers=_headers(gateway, role), timeout=10
    )
    assert resp.status_code == 422, resp.text
    assert field in [d["field"] for d in resp.json()["error"]["details"]]


def test_a_right_to_left_override_in_a_title_is_422(gateway):
    resp = requests.post(
        f"{gateway.url}/api/v1/products",
        json=_with(PRODUCT, "title", "好物 \u202e0001¥ 价原"),
        headers=gateway.headers("supplier", 1),
        timeout=10,
    )
    assert resp.status_code == 422, resp.text
    assert [d["field"] for d in resp.json()["error"]["details"]] == ["title"]
    assert "U+202E" in resp.json()["error"]["details"][0]["message"]


def test_a_zero_width_smuggled_forbidden_word_in_a_shop_name_is_refused(gateway, start_service):
    start_service("shop")
    member = requests.post(
        f"{gateway.url}/api/v1/members",
        json={
            "nickname": "阿花",
            "phone": "13900007001",
            "credit_score": 750,
            "real_name_verified": True,
        },
        timeout=10,
    )
    assert member.status_code == 201, member.text
    headers = {"Authorization": f"Bearer {member.json()['token']}"}
    for name in (ZERO_WIDTH_FLAGSHIP, "官 方小店", "ＯＦＦＩＣＩＡＬ小店"):
        resp = requests.post(
            f"{gateway.url}/api/v1/shops", json={"name": name}, headers=headers, timeout=10
        )
        assert resp.status_code == 422, (name, resp.text)
        assert "forbidden_name_word" in [d.get("rule") for d in resp.json()["error"]["details"]]
    ok = requests.post(
        f"{gateway.url}/api/v1/shops",
        json={"name": "阿花\u200b的好物"},
        headers=headers,
        timeout=10,
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["name"].startswith("阿花的好物")  # zero-width characters are not stored


# --- bounded requests -----------------------------------------------------------------------------
def test_a_body_over_the_limit_is_413_before_it_is_read(gateway):
    """The declared length alone decides: the gateway answers without reading 300 MB."""
    with socket.create_connection(("127.0.0.1", int(gateway.url.rsplit(":", 1)[1])), 10) as s:
        s.sendall(
            b"POST /api/v1/suppliers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 314572800\r\nConnection: close\r\n\r\n{"
        )
        head = s.recv(65536).decode("utf-8", "replace")
    assert head.startswith("HTTP/1.1 413"), head[:200]
    assert "application/json" in head
    assert '"body_too_large"' in head


def test_a_chunked_body_is_cut_off_at_the_limit(gateway):
    sent = {"bytes": 0}

    def chunks():
        piece = b" " * (256 * 1024)
        for _ in range(64):  # 16 MiB, far over the 1 MiB limit
            sent["bytes"] += len(piece)
            yield piece

    try:
        resp = requests.post(
            f"{gateway.url}/api/v1/suppliers",
            data=chunks(),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
    except requests.ConnectionError:  # the server may close before the client finishes sending
        pytest.fail("the gateway dropped the connection instead of answering 413")
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"]["code"] == "body_too_large"


def test_the_product_image_routes_take_a_larger_body(gateway):
    big = {"image_base64": "A" * (2 * 1024 * 1024)}  # 2 MiB: over 1 MiB, under the 8 MiB limit
    resp = requests.post(
        f"{gateway.url}/api/v1/products",
        json=big,
        headers=gateway.headers("supplier", 1),
        timeout=30,
    )
    assert resp.status_code == 422, resp.text[:300]  # read and validated (title missing ...)
    resp = requests.post(
        f"{gateway.url}/api/v1/suppliers", json={"name": "A" * (2 * 1024 * 1024)}, timeout=30
    )
    assert resp.status_code == 413


def test_json_nested_deeper_than_the_limit_is_400_not_a_recursion_error(gateway):
    for depth in (33, 5_000, 100_000):
        resp = requests.post(
            f"{gateway.url}/api/v1/suppliers",
            data="[" * depth + "]" * depth,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert resp.status_code == 400, (depth, resp.text[:200])
        assert resp.json()["error"]["code"] == "json_too_deep"
    # brackets inside strings are text, and 32 levels are fine (then: the body is not an object)
    resp = requests.post(
        f"{gateway.url}/api/v1/suppliers",
        data="[" * 32 + '"' + "[" * 1000 + '"' + "]" * 32,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert resp.status_code == 422, resp.text[:200]


def test_an_undeclared_method_on_a_known_path_is_405_with_allow(gateway):
    resp = requests.delete(f"{gateway.url}/api/v1/products", timeout=10)
    assert resp.status_code == 405
    assert set(resp.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST"}
    assert resp.json()["error"]["code"] == "method_not_allowed"
    resp = requests.put(f"{gateway.url}/api/v1/orders/12/pay", timeout=10)
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "POST"
    page = requests.post(f"{gateway.url}/s/ABCD2345", timeout=10)
    assert page.status_code == 405
    assert page.headers["Content-Type"].startswith("text/html")
    assert "GET" in page.headers["Allow"]
    # an unknown path is still a 404
    assert requests.delete(f"{gateway.url}/api/v1/nothing-here", timeout=10).status_code == 404


@pytest.mark.parametrize("path", ["/nothing-here", "/shop/", "/my/nothing", "/s/"])
def test_page_paths_answer_a_chinese_html_error_page(gateway, path):
    resp = requests.get(gateway.url + path, timeout=10)
    assert resp.status_code == 404
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "页面不存在" in resp.text
    assert '<html lang="zh-CN">' in resp.text


def test_a_failing_page_is_an_html_500_or_503_page_not_json(gateway):
    """No share or shop service runs: their pages answer 503 as Chinese HTML pages."""
    for path in ("/s/ABCD2345", "/shop/123456"):
        resp = requests.get(f"{gateway.url}{path}", timeout=30)
        assert resp.status_code == 503, path
        assert resp.headers["Content-Type"].startswith("text/html")
        assert '<html lang="zh-CN">' in resp.text and "请稍后再试" in resp.text


def test_api_errors_stay_json(gateway):
    resp = requests.get(f"{gateway.url}/api/v1/nothing-here", timeout=10)
    assert resp.status_code == 404
    assert resp.headers["Content-Type"] == "application/json"


def test_openapi_declares_the_html_404_of_the_landing_page_and_the_phone_pattern(gateway):
    doc = requests.get(f"{gateway.url}/api/v1/openapi.json", timeout=10).json()
    landing = doc["paths"]["/s/{code}"]["get"]["responses"]
    assert "text/html" in landing["404"]["content"]
    phone = doc["components"]["schemas"]["MemberIn"]["properties"]["phone"]
    assert phone["pattern"] == MOBILE_PATTERN
    assert not re.match(phone["pattern"], "0")
    assert re.match(phone["pattern"], "+86 138-0013-8000")
    limit = doc["paths"]["/api/v1/products"]["get"]["parameters"]
    assert {"name": "limit", "in": "query", "required": False} | {
        "schema": {"type": "integer", "minimum": 1, "maximum": 100}
    } in limit


def test_a_phone_the_schema_refuses_is_422_naming_phone(gateway):
    resp = requests.post(
        f"{gateway.url}/api/v1/members",
        json={"nickname": "x", "phone": "0", "credit_score": 700, "real_name_verified": True},
        timeout=10,
    )
    assert resp.status_code == 422
    assert [d["field"] for d in resp.json()["error"]["details"]] == ["phone"]


# --- contract looseness ---------------------------------------------------------------------------
def test_a_garbage_clock_is_422_not_500(gateway):
    resp = requests.post(
        f"{gateway.url}/api/v1/admin/clock",
        json={"now": "garbage"},
        headers=gateway.headers("admin"),
        timeout=10,
    )
    assert resp.status_code == 422, resp.text
    assert [d["field"] for d in resp.json()["error"]["details"]] == ["now"]


def test_put_cart_without_a_body_is_422_and_an_explicit_empty_list_empties_it(
    gateway, start_service
):
    start_service("orders")
    buyer = gateway.headers("member", 41)
    resp = requests.put(f"{gateway.url}/api/v1/cart", headers=buyer, timeout=10)
    assert resp.status_code == 422, resp.text
    assert [d["field"] for d in resp.json()["error"]["details"]] == ["items"]
    resp = requests.put(f"{gateway.url}/api/v1/cart", json={"items": []}, headers=buyer, timeout=10)
    assert resp.status_code == 200, resp.text


def test_an_empty_query_parameter_is_an_absent_one(gateway, start_service):
    start_service("catalog")
    resp = requests.get(f"{gateway.url}/api/v1/products?limit=&q=&cursor=", timeout=10)
    assert resp.status_code == 200, resp.text


def test_nul_in_query_parameters_and_client_keys_is_not_a_500(gateway, start_service):
    start_service("orders")
    buyer = gateway.headers("member", 41)
    for path in ("/api/v1/orders?status=%00", "/api/v1/inquiries?status=paid%00"):
        resp = requests.get(gateway.url + path, headers=buyer, timeout=10)
        assert resp.status_code == 422, (path, resp.text)
    for field in ("checkout_key", "visitor_id", "share_code", "shop_number"):
        body = {"items": [{"product_id": 1, "quantity": 1}], "address": ADDRESS, field: "k\x00"}
        resp = requests.post(f"{gateway.url}/api/v1/orders", json=body, headers=buyer, timeout=10)
        assert resp.status_code == 422, (field, resp.text)
        assert [d["field"] for d in resp.json()["error"]["details"]] == [field]
    resp = requests.patch(
        f"{gateway.url}/api/v1/products/1",
        json={"image_url": "https://img.example/a\x00.png"},
        headers=gateway.headers("supplier", 1),
        timeout=10,
    )
    assert resp.status_code == 422
