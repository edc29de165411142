"""The catalog tells other services what changed, through the outbox (shapes of
shared/contracts/events.py)."""

from catalog_support import poll
from nameko.events import event_handler

from shared.contracts.events import ProductSnapshot, SupplierChanged

RECEIVED: list[dict] = []
TYPES = (
    "product_listed",
    "product_changed",
    "product_delisted",
    "supplier_activated",
    "supplier_suspended",
)


class Listener:
    name = "catalog_listener"

    def _record(self, event):
        RECEIVED.append(event)

    @event_handler("catalog", "product_listed")
    def on_listed(self, event):
        self._record(event)

    @event_handler("catalog", "product_changed")
    def on_changed(self, event):
        self._record(event)

    @event_handler("catalog", "product_delisted")
    def on_delisted(self, event):
        self._record(event)

    @event_handler("catalog", "supplier_activated")
    def on_activated(self, event):
        self._record(event)

    @event_handler("catalog", "supplier_suspended")
    def on_suspended(self, event):
        self._record(event)


def seen(event_type, **match):
    return [
        e
        for e in RECEIVED
        if e["type"] == event_type and all(e["data"].get(k) == v for k, v in match.items())
    ]


def test_listing_selling_out_delisting_and_suspension_are_published(catalog, container_factory):
    RECEIVED.clear()
    container_factory(Listener, catalog.config).start()
    s = catalog.active_supplier()
    poll(lambda: seen("supplier_activated", supplier_id=s["id"]))
    SupplierChanged.model_validate(seen("supplier_activated")[0]["data"])

    p = catalog.list_product(s, stock=2)
    listed = poll(lambda: seen("product_listed", product_id=p["id"]))[0]
    snap = ProductSnapshot.model_validate(listed["data"])
    assert (snap.available, snap.stock, snap.commission_bps) == (True, 2, 1500)

    catalog.rpc("reserve_stock", "a", [{"product_id": p["id"], "quantity": 1}])
    catalog.rpc("reserve_stock", "b", [{"product_id": p["id"], "quantity": 1}])  # sells out
    sold_out = poll(lambda: seen("product_changed", product_id=p["id"], available=False))
    assert sold_out[0]["data"]["stock"] == 0
    catalog.rpc("release_stock", "b")  # back in stock
    poll(lambda: seen("product_changed", product_id=p["id"], available=True, stock=1))
    # one reservation that does not flip availability publishes nothing
    assert len(seen("product_changed", product_id=p["id"])) == 2

    catalog.patch(f"/api/v1/products/{p['id']}", {"price_fen": 9000}, catalog.auth(s))
    poll(lambda: seen("product_changed", product_id=p["id"], price_fen=9000))

    q = catalog.list_product(s, title="Second")
    catalog.post(f"/api/v1/products/{q['id']}/delist", headers=catalog.auth(s))
    poll(lambda: seen("product_delisted", product_id=q["id"], status="delisted"))

    catalog.post(f"/api/v1/admin/suppliers/{s['id']}/suspend", {}, catalog.gw.headers("admin"))
    poll(lambda: seen("supplier_suspended", supplier_id=s["id"], status="suspended"))
    poll(lambda: seen("product_changed", product_id=p["id"], available=False, stock=1))
    for e in RECEIVED:
        assert e["source"] == "catalog" and e["id"] and e["occurred_at"]
