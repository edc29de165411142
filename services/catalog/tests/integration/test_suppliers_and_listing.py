"""Supplier onboarding and product listing through the gateway, with the real catalog service."""

from catalog_support import product_body, supplier_body

from shared.ids import MAX_INT_ID


def rules_of(resp):
    return sorted(d["rule"] for d in resp.json()["error"]["details"])


def test_an_underqualified_supplier_is_refused_naming_every_rule_it_breaks(catalog):
    resp = catalog.post(
        "/api/v1/suppliers",
        supplier_body(
            registered_capital_fen=50_000_000, general_taxpayer=False, brand_authorization_levels=5
        ),
    )
    assert resp.status_code == 422
    assert rules_of(resp) == ["brand_authorization_chain", "general_taxpayer", "registered_capital"]


def test_unbranded_goods_without_purchase_records_cannot_qualify(catalog):
    resp = catalog.post("/api/v1/suppliers", supplier_body(brand_authorization_levels=None))
    assert resp.status_code == 422
    assert rules_of(resp) == ["goods_provenance"]
    ok = catalog.post(
        "/api/v1/suppliers", supplier_body(brand_authorization_levels=None, purchase_records=True)
    )
    assert ok.status_code == 201


def test_malformed_supplier_money_is_422_naming_the_field(catalog):
    resp = catalog.post("/api/v1/suppliers", supplier_body(registered_capital_fen="lots"))
    assert resp.status_code == 422
    assert [d["field"] for d in resp.json()["error"]["details"]] == ["registered_capital_fen"]


def test_a_supplier_is_pending_until_the_deposit_is_paid_in_full(catalog):
    s = catalog.register()
    assert s["status"] == "pending_deposit" and s["token"]
    early = catalog.post("/api/v1/products", product_body(), catalog.auth(s))
    assert early.status_code == 409
    assert early.json()["error"]["code"] == "supplier_not_active"

    part = catalog.post(
        f"/api/v1/suppliers/{s['id']}/deposit", {"amount_fen": 400_000}, catalog.auth(s)
    )
    assert part.status_code == 200
    assert (part.json()["status"], part.json()["deposit_fen"]) == ("pending_deposit", 400_000)
    rest = catalog.post(
        f"/api/v1/suppliers/{s['id']}/deposit", {"amount_fen": 600_000}, catalog.auth(s)
    )
    assert (rest.json()["status"], rest.json()["deposit_fen"]) == ("active", 1_000_000)

    listed = catalog.post("/api/v1/products", product_body(), catalog.auth(s))
    assert listed.status_code == 201, listed.text
    product = listed.json()
    assert product["status"] == "listed" and product["available"] is True
    assert product["commission_fen"] == 1485  # 9900 × 15%


def test_a_supplier_sees_only_its_own_account(catalog):
    a, b = catalog.register(), catalog.register(name="Other")
    assert catalog.get(f"/api/v1/suppliers/{a['id']}", catalog.auth(a)).status_code == 200
    # another supplier's account answers exactly what an account that does not exist answers
    missing = MAX_INT_ID if MAX_INT_ID not in (a["id"], b["id"]) else 1
    for sid in (b["id"], missing):
        theirs = catalog.get(f"/api/v1/suppliers/{sid}", catalog.auth(a))
        assert theirs.status_code == 404
        assert theirs.json()["error"] == {
            "code": "supplier_not_found",
            "message": f"supplier {sid} not found",
            "details": None,
        }
        deposit = catalog.post(
            f"/api/v1/suppliers/{sid}/deposit", {"amount_fen": 1}, catalog.auth(a)
        )
        assert deposit.status_code == 404 and deposit.json() == theirs.json()
    gone = catalog.get(f"/api/v1/suppliers/{missing}", catalog.gw.headers("admin"))
    assert gone.json() == catalog.get(f"/api/v1/suppliers/{missing}", catalog.auth(a)).json()
    admin = catalog.get(f"/api/v1/suppliers/{b['id']}", catalog.gw.headers("admin"))
    assert admin.json()["contact"]["wechat"] == "hz_tea"


def test_a_rule_breaking_listing_is_422_naming_each_rule(catalog):
    s = catalog.active_supplier()
    resp = catalog.post(
        "/api/v1/products",
        product_body(
            commission_bps=1000,
            market_commission_bps=1200,
            price_fen=13900,
            reference_price_fen=12900,
            category="weapons",
        ),
        catalog.auth(s),
    )
    assert resp.status_code == 422
    assert rules_of(resp) == [
        "category_known",
        "commission_not_below_market",
        "price_not_above_reference",
    ]
    zero = catalog.post("/api/v1/products", product_body(price_fen=0, stock=-1), catalog.auth(s))
    assert zero.status_code == 422
    assert rules_of(zero) == ["price_positive", "stock_non_negative"]
    floaty = catalog.post("/api/v1/products", product_body(price_fen=99.5), catalog.auth(s))
    assert floaty.status_code == 422
    assert floaty.json()["error"]["details"][0]["field"] == "price_fen"


def test_suppliers_edit_and_delist_only_their_own_products(catalog):
    a, b = catalog.active_supplier(), catalog.active_supplier(name="Rival")
    p = catalog.list_product(a)
    assert (
        catalog.patch(
            f"/api/v1/products/{p['id']}", {"price_fen": 100}, catalog.auth(b)
        ).status_code
        == 403
    )
    assert (
        catalog.post(f"/api/v1/products/{p['id']}/delist", headers=catalog.auth(b)).status_code
        == 403
    )

    edited = catalog.patch(f"/api/v1/products/{p['id']}", {"price_fen": 8800}, catalog.auth(a))
    assert edited.status_code == 200
    assert (edited.json()["price_fen"], edited.json()["commission_fen"]) == (8800, 1320)
    bad = catalog.patch(f"/api/v1/products/{p['id']}", {"commission_bps": 100}, catalog.auth(a))
    assert bad.status_code == 422 and rules_of(bad) == ["commission_not_below_market"]

    delisted = catalog.post(f"/api/v1/products/{p['id']}/delist", headers=catalog.auth(a))
    assert delisted.json()["status"] == "delisted" and delisted.json()["available"] is False
    assert catalog.get(f"/api/v1/products/{p['id']}").json()["status"] == "delisted"
    relisted = catalog.post(f"/api/v1/products/{p['id']}/relist", headers=catalog.auth(a))
    assert relisted.json()["status"] == "listed"


def test_members_cannot_list_products(catalog):
    resp = catalog.post("/api/v1/products", product_body(), catalog.gw.headers("member", 1))
    assert resp.status_code == 403


def test_an_unknown_product_is_404(catalog):
    assert catalog.get("/api/v1/products/999999").status_code == 404


def test_suspending_a_supplier_makes_its_products_unavailable(catalog):
    s = catalog.active_supplier()
    p = catalog.list_product(s)
    resp = catalog.post(
        f"/api/v1/admin/suppliers/{s['id']}/suspend",
        {"reason": "fake goods"},
        catalog.gw.headers("admin"),
    )
    assert resp.status_code == 200 and resp.json()["status"] == "suspended"
    assert catalog.get(f"/api/v1/products/{p['id']}").json()["available"] is False
    assert catalog.get("/api/v1/products").json()["items"] == []
    again = catalog.post("/api/v1/products", product_body(), catalog.auth(s))
    assert again.status_code == 403
    assert (
        catalog.post(f"/api/v1/admin/suppliers/{s['id']}/suspend", {}, catalog.auth(s)).status_code
        == 403
    )
    catalog.post(
        f"/api/v1/admin/suppliers/{s['id']}/reinstate", headers=catalog.gw.headers("admin")
    )
    assert catalog.get(f"/api/v1/products/{p['id']}").json()["available"] is True


def test_the_supplier_contact_is_there_for_after_sales(catalog):
    s = catalog.active_supplier()
    assert catalog.rpc("get_supplier_contact", s["id"]) == {
        "supplier_id": s["id"],
        "name": "Hangzhou Tea Co.",
        "phone": "13800000000",
        "wechat": "hz_tea",
        "email": "service@hztea.example",
    }
