"""Keepers browse listed, in-stock products with their exact commission; images by hash."""

import base64
import hashlib
import io

from catalog_support import png_b64, product_body
from PIL import Image


def test_browse_shows_the_exact_commission_of_listed_in_stock_products(catalog):
    s = catalog.active_supplier()
    tea = catalog.list_product(s, price_fen=9999, commission_bps=1500)
    catalog.list_product(s, title="Sold out", stock=0)
    gone = catalog.list_product(s, title="Delisted")
    catalog.post(f"/api/v1/products/{gone['id']}/delist", headers=catalog.auth(s))

    page = catalog.get("/api/v1/products").json()
    assert [i["id"] for i in page["items"]] == [tea["id"]]
    item = page["items"][0]
    assert (item["price_fen"], item["commission_bps"], item["commission_fen"]) == (9999, 1500, 1500)
    assert page["next_cursor"] is None


def test_browse_filters_by_category_and_text_and_pages_with_a_cursor(catalog):
    s = catalog.active_supplier()
    ids = [catalog.list_product(s, title=f"Toy {n}", category="baby_toys")["id"] for n in range(5)]
    catalog.list_product(s, title="Lipstick", category="beauty_care", brand="Rouge")

    seen, cursor = [], None
    while True:
        params = {"category": "baby_toys", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = catalog.get("/api/v1/products", params=params).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(ids, reverse=True)

    found = catalog.get("/api/v1/products", params={"q": "rouge"}).json()["items"]
    assert [i["title"] for i in found] == ["Lipstick"]
    assert catalog.get("/api/v1/products", params={"q": "100%"}).json()["items"] == []
    assert catalog.get("/api/v1/products", params={"cursor": "garbage!"}).status_code == 422
    assert catalog.get("/api/v1/products", params={"category": "weapons"}).status_code == 422
    assert catalog.get("/api/v1/products", params={"limit": "x"}).status_code == 422


def test_get_products_answers_in_the_order_asked_and_omits_missing_ids(catalog):
    s = catalog.active_supplier()
    a, b = catalog.list_product(s), catalog.list_product(s, title="Other")
    got = catalog.rpc("get_products", [b["id"], 424242, a["id"]])
    assert [p["id"] for p in got] == [b["id"], a["id"]]
    assert set(got[0]) >= {
        "id",
        "supplier_id",
        "title",
        "category",
        "description",
        "brand",
        "price_fen",
        "commission_bps",
        "commission_fen",
        "stock",
        "status",
        "available",
        "image_url",
        "image_ref",
    }


def test_an_uploaded_image_is_stored_by_hash_and_served(catalog):
    s = catalog.active_supplier()
    data = png_b64()
    p = catalog.list_product(s, image_base64=data)
    ref = hashlib.sha256(base64.b64decode(data)).hexdigest()
    assert p["image_ref"] == ref
    assert p["image_url"] == f"{catalog.url}/api/v1/images/{ref}"
    resp = catalog.get(f"/api/v1/images/{ref}")
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(resp.content)).size == (16, 16)
    via_rpc = catalog.rpc("get_image", ref)
    assert via_rpc["content_type"] == "image/png"
    assert base64.b64decode(via_rpc["data_b64"]) == base64.b64decode(data)
    assert catalog.get("/api/v1/images/" + "0" * 64).status_code == 404


def test_a_fake_or_bomb_image_is_422(catalog):
    s = catalog.active_supplier()
    fake = catalog.post(
        "/api/v1/products",
        product_body(image_base64=base64.b64encode(b"<svg>not really</svg>").decode()),
        catalog.auth(s),
    )
    assert fake.status_code == 422
    assert fake.json()["error"]["details"][0]["rule"] == "image_real"
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, "PNG")
    bomb = catalog.post(
        "/api/v1/products",
        product_body(image_base64=base64.b64encode(buf.getvalue()).decode()),
        catalog.auth(s),
    )
    assert bomb.status_code == 422
    assert bomb.json()["error"]["details"][0]["rule"] == "image_pixels"


def test_the_catalog_endpoints_are_in_the_openapi_document(catalog):
    doc = catalog.get("/api/v1/openapi.json").json()
    for path in (
        "/api/v1/suppliers",
        "/api/v1/suppliers/{supplier_id}/deposit",
        "/api/v1/products",
        "/api/v1/products/{product_id}",
        "/api/v1/images/{image_ref}",
        "/api/v1/admin/suppliers/{supplier_id}/suspend",
    ):
        assert path in doc["paths"], path
    assert "ProductIn" in doc["components"]["schemas"]
