"""The platform as production runs it: separate processes, real broker, real PostgreSQL."""

from shared.config import SERVICES


def test_health_reports_every_service_ok(api):
    resp = api.get("/api/v1/health")
    assert resp.status_code == 200
    assert resp.json()["services"] == {s: "ok" for s in SERVICES}


def test_openapi_document_is_served(api):
    doc = api.get("/api/v1/openapi.json").json()
    assert doc["info"]["title"] == "Xiaopu gateway"
    assert "/api/v1/health" in doc["paths"]


def test_unknown_api_route_is_json_404_and_unknown_page_is_a_chinese_html_404(api):
    resp = api.get("/api/v1/nothing/here")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "route_not_found"
    page = api.get("/nothing/here")
    assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html")
    assert '<html lang="zh-CN">' in page.text
