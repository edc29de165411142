"""The platform as production runs it: separate processes, real broker, real PostgreSQL."""


def test_health_reports_all_five_services_ok(api):
    resp = api.get("/api/v1/health")
    assert resp.status_code == 200
    assert resp.json()["services"] == {
        s: "ok" for s in ("catalog", "shop", "share", "orders", "payouts")
    }


def test_openapi_document_is_served(api):
    doc = api.get("/api/v1/openapi.json").json()
    assert doc["info"]["title"] == "Xiaopu gateway"
    assert "/api/v1/health" in doc["paths"]


def test_unknown_route_is_json_404(api):
    resp = api.get("/nothing/here")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "route_not_found"
