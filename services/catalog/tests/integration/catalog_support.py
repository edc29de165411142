"""Helpers for the catalog's integration tests: the real catalog service behind the real gateway."""

import base64
import io
from collections.abc import Sequence

import requests
from nameko.rpc import rpc
from nameko.standalone.rpc import ClusterRpcProxy
from PIL import Image
from sqlalchemy import create_engine, text

from shared.testing import wait_for as poll  # noqa: F401  (used by the tests through this module)


def supplier_body(**over):
    body = {
        "name": "Hangzhou Tea Co.",
        "registered_capital_fen": 200_000_000,
        "general_taxpayer": True,
        "contact": {"phone": "13800000000", "wechat": "hz_tea", "email": "service@hztea.example"},
        "brand_authorization_levels": 1,
    }
    body.update(over)
    return body


def product_body(**over):
    body = {
        "title": "West Lake Longjing 250g",
        "category": "food_health",
        "price_fen": 9900,
        "stock": 10,
        "commission_bps": 1500,
        "market_commission_bps": 1200,
        "reference_price_fen": 12900,
        "brand": "Hangzhou Tea",
        "description": "Spring tea",
    }
    body.update(over)
    return body


def png_b64(width=16, height=16, colour=(10, 120, 40)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


class Catalog:
    """Talks to the platform like a client would (HTTP) and like a service would (RPC)."""

    def __init__(self, gateway, container):
        self.gw = gateway
        self.url = gateway.url
        self.container = container
        self.config = {"AMQP_URI": container.config["AMQP_URI"]}

    def rpc(self, method, *args, **kwargs):
        with ClusterRpcProxy(self.config, timeout=30) as proxy:
            return getattr(proxy.catalog, method)(*args, **kwargs)

    def post(self, path, json=None, headers=None):
        return requests.post(self.url + path, json=json, headers=headers or {}, timeout=15)

    def get(self, path, headers=None, params=None):
        return requests.get(self.url + path, headers=headers or {}, params=params, timeout=15)

    def patch(self, path, json=None, headers=None):
        return requests.patch(self.url + path, json=json, headers=headers or {}, timeout=15)

    def register(self, **over):
        resp = self.post("/api/v1/suppliers", supplier_body(**over))
        assert resp.status_code == 201, resp.text
        return resp.json()

    def auth(self, supplier):
        return {"Authorization": f"Bearer {supplier['token']}"}

    def active_supplier(self, **over):
        s = self.register(**over)
        resp = self.post(
            f"/api/v1/suppliers/{s['id']}/deposit", {"amount_fen": 1_000_000}, self.auth(s)
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "active"
        return s

    def list_product(self, supplier, **over):
        resp = self.post("/api/v1/products", product_body(**over), self.auth(supplier))
        assert resp.status_code == 201, resp.text
        return resp.json()


# --- a fake orders service: its stock pool, for the catalog's reclaims ------------------------
ORDERS: dict = {"pool": {}, "applied": set(), "revoked": set(), "answers": {}, "calls": []}


def reset_orders() -> None:
    ORDERS.update({"pool": {}, "applied": set(), "revoked": set(), "answers": {}, "calls": []})


def orders_applies(answer: dict) -> None:
    """What orders does with a ``grant_stock`` answer: the units join its pool (a reply to a
    grant a reclaim revoked meanwhile is discarded)."""
    if answer["grant_id"] in ORDERS["revoked"]:
        return
    ORDERS["applied"].add(answer["grant_id"])
    for item in answer["items"]:
        pid = item["product_id"]
        ORDERS["pool"][pid] = ORDERS["pool"].get(pid, 0) + item["quantity"]


class FakeOrders:
    """orders' ``reclaim_stock`` as the catalog relies on it: the free pool units of the
    products come back (its pool for them becomes 0), the sent grants it had not applied are
    revoked, and a repeat of ``reclaim_id`` answers the first answer."""

    name = "orders"

    @rpc
    def reclaim_stock(self, reclaim_id, product_ids, grant_ids):
        ORDERS["calls"].append((reclaim_id, list(product_ids), list(grant_ids)))
        if reclaim_id not in ORDERS["answers"]:
            ORDERS["answers"][reclaim_id] = {
                "reclaim_id": reclaim_id,
                "items": [
                    {"product_id": p, "units": ORDERS["pool"].pop(p, 0)} for p in product_ids
                ],
                "revoked": [g for g in grant_ids if g not in ORDERS["applied"]],
            }
            ORDERS["revoked"].update(ORDERS["answers"][reclaim_id]["revoked"])
        return ORDERS["answers"][reclaim_id]


# --- the catalog's rows, as stored --------------------------------------------------------------
def db(catalog, sql: str, **params) -> list:
    engine = create_engine(catalog.container.config["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def columns(catalog, pid: int) -> tuple[int, int, int]:
    """(stock, allotted, units_sold) as stored."""
    row = db(catalog, "SELECT stock, allotted, units_sold FROM products WHERE id = :id", id=pid)[0]
    return row.stock, row.allotted, row.units_sold


def grants(catalog) -> dict[tuple[str, int], tuple[int, str]]:
    rows = db(catalog, "SELECT grant_id, product_id, quantity, status FROM stock_grants")
    return {(r.grant_id, r.product_id): (r.quantity, r.status) for r in rows}


def order_paid_event(
    order_id: int,
    reservation_id: str,
    lines: Sequence[tuple[int, int]] = (),
    allotted: bool = False,
    event_id: str | None = None,
) -> dict:
    """orders' ``order_paid`` as the catalog consumes it: ``lines`` (product id, quantity);
    ``allotted``: the stock came from orders' pool."""
    data: dict = {
        "order_id": order_id,
        "buyer_id": 1,
        "supplier_id": 1,
        "shop_id": None,
        "share_id": None,
        "self_referral": False,
        "paid_fen": 100,
        "lines": [
            {
                "product_id": p,
                "title": "t",
                "quantity": q,
                "unit_price_fen": 50,
                "amount_fen": 50 * q,
                "commission_bps": 1500,
            }
            for p, q in lines
        ],
        "paid_at": "2030-01-01T00:00:00Z",
        "reservation_id": reservation_id,
    }
    if allotted:
        data["allotted"] = True
    return {
        "id": event_id or f"evt-{reservation_id}",
        "type": "order_paid",
        "version": 1,
        "source": "orders",
        "occurred_at": "2030-01-01T00:00:00Z",
        "data": data,
    }
