"""Sorting the catalog (newest, commission, sales) with a cursor per sort, units sold counted
when stock is committed, and the product gallery (issue 17)."""

import uuid

import requests
from catalog_support import png_b64


def _browse(catalog, **params):
    resp = catalog.get("/api/v1/products", params=params)
    return resp


def _all_pages(catalog, sort, limit=2):
    ids, cursor = [], None
    while True:
        params = {"sort": sort, "limit": limit, **({"cursor": cursor} if cursor else {})}
        resp = _browse(catalog, **params)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        ids += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return ids


def _sell(catalog, product_id, quantity):
    rid = uuid.uuid4().hex
    catalog.rpc("reserve_stock", rid, [{"product_id": product_id, "quantity": quantity}])
    catalog.rpc("commit_stock", rid)
    return rid


def test_browse_sorts_by_newest_commission_and_sales_with_a_cursor_per_sort(catalog):
    s = catalog.active_supplier()
    # commission in fen: a=1485, b=3000 (price×bps ties with c), c=3000, d=500
    a = catalog.list_product(s, title="A", price_fen=9900, commission_bps=1500)
    b = catalog.list_product(
        s, title="B", price_fen=20000, commission_bps=1500, reference_price_fen=20000
    )
    c = catalog.list_product(
        s, title="C", price_fen=15000, commission_bps=2000, reference_price_fen=15000, stock=50
    )
    d = catalog.list_product(
        s, title="D", price_fen=5000, commission_bps=1000, market_commission_bps=1000
    )
    _sell(catalog, c["id"], 5)
    _sell(catalog, a["id"], 2)
    _sell(catalog, a["id"], 1)

    assert _all_pages(catalog, "newest") == [d["id"], c["id"], b["id"], a["id"]]
    # equal commission (b and c) falls back to newest first, across the page boundary
    assert _all_pages(catalog, "commission") == [c["id"], b["id"], a["id"], d["id"]]
    assert _all_pages(catalog, "sales") == [c["id"], a["id"], d["id"], b["id"]]
    assert _all_pages(catalog, "sales", limit=1) == [c["id"], a["id"], d["id"], b["id"]]

    items = {p["id"]: p for p in _browse(catalog, sort="sales").json()["items"]}
    assert items[c["id"]]["units_sold"] == 5 and items[a["id"]]["units_sold"] == 3
    assert items[c["id"]]["stock"] == 45


def test_units_sold_go_back_when_committed_stock_is_returned(catalog):
    s = catalog.active_supplier()
    p = catalog.list_product(s, stock=20)
    rid = _sell(catalog, p["id"], 4)
    assert catalog.get(f"/api/v1/products/{p['id']}").json()["units_sold"] == 4
    catalog.rpc("release_stock", rid)  # a full refund before shipping gives the stock back
    catalog.rpc("release_stock", rid)  # once
    after = catalog.get(f"/api/v1/products/{p['id']}").json()
    assert after["units_sold"] == 0 and after["stock"] == 20


def test_an_unknown_sort_or_a_cursor_of_another_sort_is_422(catalog):
    s = catalog.active_supplier()
    for i in range(3):
        catalog.list_product(s, title=f"P{i}")
    bad = _browse(catalog, sort="price")
    assert bad.status_code == 422, bad.text
    assert [d["field"] for d in bad.json()["error"]["details"]] == ["sort"]

    cursor = _browse(catalog, sort="commission", limit=1).json()["next_cursor"]
    assert cursor
    crossed = _browse(catalog, sort="sales", limit=1, cursor=cursor)
    assert crossed.status_code == 422, crossed.text
    assert crossed.json()["error"]["details"][0]["field"] == "cursor"


def test_the_gallery_keeps_up_to_nine_images_in_order_with_the_first_as_cover(catalog):
    s = catalog.active_supplier()
    other = catalog.active_supplier(name="Other Co.")
    p = catalog.list_product(s)
    assert p["images"] == []
    upload = png_b64(colour=(200, 30, 30))
    body = {
        "images": [
            {"image_base64": upload},
            {"url": "https://img.example/2.jpg"},
            {"url": "https://img.example/3.jpg"},
        ]
    }
    path = f"/api/v1/products/{p['id']}/images"
    resp = requests.put(catalog.url + path, json=body, headers=catalog.auth(s), timeout=15)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert len(out["images"]) == 3
    assert out["images"][0] == out["image_url"]
    assert out["images"][0].startswith(catalog.url + "/api/v1/images/")
    assert out["images"][1:] == ["https://img.example/2.jpg", "https://img.example/3.jpg"]
    assert catalog.get(out["images"][0].removeprefix(catalog.url)).status_code == 200
    assert catalog.get(f"/api/v1/products/{p['id']}").json()["images"] == out["images"]

    ten = {"images": [{"url": f"https://img.example/{i}.jpg"} for i in range(10)]}
    too_many = requests.put(catalog.url + path, json=ten, headers=catalog.auth(s), timeout=15)
    assert too_many.status_code == 422, too_many.text
    both = {"images": [{"url": "https://img.example/1.jpg", "image_base64": upload}]}
    assert (
        requests.put(catalog.url + path, json=both, headers=catalog.auth(s), timeout=15).status_code
        == 422
    )
    foreign = requests.put(catalog.url + path, json=body, headers=catalog.auth(other), timeout=15)
    assert foreign.status_code in (403, 404), foreign.text

    # a PATCH of the single image replaces the cover and keeps the rest of the gallery
    patched = catalog.patch(
        f"/api/v1/products/{p['id']}", {"image_url": "https://img.example/new.jpg"}, catalog.auth(s)
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["images"] == [
        "https://img.example/new.jpg",
        "https://img.example/2.jpg",
        "https://img.example/3.jpg",
    ]
    cleared = requests.put(
        catalog.url + path, json={"images": []}, headers=catalog.auth(s), timeout=15
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["images"] == [] and cleared.json()["image_url"] is None


def test_sorting_and_the_gallery_are_in_the_openapi_document(catalog):
    doc = catalog.get("/api/v1/openapi.json").json()
    params = {p["name"]: p for p in doc["paths"]["/api/v1/products"]["get"]["parameters"]}
    assert "sort" in params
    assert "put" in doc["paths"]["/api/v1/products/{product_id}/images"]
