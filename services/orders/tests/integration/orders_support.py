"""Small fake catalog, shop, share and payouts services for the orders integration tests.

They keep their state in ``WORLD`` (this test process), stateful enough to reserve, commit
and release stock all-or-nothing and idempotently per reservation id, like the real catalog.
A recorder service collects the events the orders service publishes.
"""

from __future__ import annotations

import threading

from nameko.events import event_handler as plain_event_handler
from nameko.rpc import rpc
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from shared import clock
from shared.errors import Conflict, NotFound
from shared.events import event_handler as reliable_event_handler
from shared.testing import wait_for  # noqa: F401  (used by the tests through this module)

WORLD: dict = {}
LOCK = threading.Lock()
EVENTS: list[dict] = []


def reset_world() -> None:
    WORLD.clear()
    EVENTS.clear()
    WORLD.update(
        {
            "products": {},
            "stock": {},
            "reservations": {},
            "suppliers": {},
            "shops": {},
            "members": {},
            "shares": {},
            "visits": {},
            "fail_commit": False,
            "fail_reserve": set(),
            "calls": [],
            "holds": {},
            "grants": {},
            "allotted": {},
            "lose_grant_answer": 0,  # the next N grants are made, then their answers lost
        }
    )


def add_supplier(sid: int, name: str, phone: str) -> None:
    WORLD["suppliers"][sid] = {
        "supplier_id": sid,
        "name": name,
        "phone": phone,
        "wechat": f"wx-{sid}",
        "email": f"s{sid}@example.com",
    }


def add_product(
    pid: int,
    supplier_id: int,
    price_fen: int,
    stock: int,
    commission_bps=1000,
    available=True,
    title=None,
) -> None:
    WORLD["products"][pid] = {
        "id": pid,
        "supplier_id": supplier_id,
        "title": title or f"Product {pid}",
        "category": "food_health",
        "description": f"facts about product {pid}",
        "brand": "Brand",
        "price_fen": price_fen,
        "commission_bps": commission_bps,
        "commission_fen": price_fen * commission_bps // 10000,
        "status": "listed",
        "available": available,
        "image_url": None,
        "image_ref": None,
    }
    WORLD["stock"][pid] = stock


def add_shop(shop_id: int, member_id: int, number: str, status="active") -> None:
    WORLD["shops"][shop_id] = {
        "id": shop_id,
        "member_id": member_id,
        "shop_number": number,
        "name": f"Shop {shop_id}",
        "display_name": f"Shop {shop_id}小铺",
        "status": status,
        "level": "newcomer",
        "level_bonus_bps": 0,
    }
    WORLD["members"][member_id] = {"nickname": f"keeper{member_id}", "phone": "13900001111"}


def add_share(share_id: str, code: str, shop_id: int, product_id: int) -> None:
    WORLD["shares"][code] = {
        "share_id": share_id,
        "shop_id": shop_id,
        "product_id": product_id,
        "code": code,
        "shop_number": WORLD["shops"][shop_id]["shop_number"],
    }


def stock(pid: int) -> int:
    """Units of the product for sale: the (fake) catalog's stock and the free units of orders'
    pool (granted by the catalog, held by no order; read from orders' own database when a
    test runs the orders service)."""
    return WORLD["stock"][pid] + pool_units(pid)


def pool_units(pid: int) -> int:
    url = WORLD.get("orders_db_url")
    if url is None:
        return 0
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT units FROM stock_pool WHERE product_id = :p"), {"p": pid}
            ).scalar()
    finally:
        engine.dispose()
    return int(found or 0)


def events(event_type: str) -> list[dict]:
    return [e for e in EVENTS if e["type"] == event_type]


class _Platform:
    @rpc
    def set_clock(self, now, offset_seconds=None, version=None):
        # the gateway passes the platform-wide move (shared.clocksync); in this process the
        # clock module is shared, so the gateway has applied it already
        return {"service": self.name, "now": clock.iso(clock.now())}

    @rpc
    def health(self):
        return {"status": "ok"}

    @rpc
    def echo(self, payload=None):
        return payload


class FakeIdentity(_Platform):
    """Only answers the platform RPCs (the admin clock moves every service)."""

    name = "identity"


class FakeMessages(_Platform):
    name = "messages"


class FakeCatalog(_Platform):
    name = "catalog"

    @rpc
    def get_products(self, ids):
        WORLD["calls"].append(("get_products", list(ids)))
        out = []
        for pid in ids:
            p = WORLD["products"].get(int(pid))
            if p:
                out.append({**p, "stock": WORLD["stock"][int(pid)]})
        return out

    @rpc
    def get_supplier_contact(self, supplier_id):
        if int(supplier_id) not in WORLD["suppliers"]:
            raise NotFound("no supplier")
        return WORLD["suppliers"][int(supplier_id)]

    @rpc
    def reserve_stock(self, reservation_id, items, hold_seconds=None):
        WORLD["calls"].append(("reserve_stock", reservation_id))
        WORLD["holds"][reservation_id] = hold_seconds
        with LOCK:
            if reservation_id in WORLD["reservations"]:
                return {"reservation_id": reservation_id, "status": "reserved"}
            short = [
                i["product_id"]
                for i in items
                if i["product_id"] in WORLD["fail_reserve"]
                or WORLD["stock"].get(i["product_id"], 0) < i["quantity"]
            ]
            if short:
                raise Conflict(
                    "not enough stock",
                    details=[{"product_id": p, "reason": "insufficient_stock"} for p in short],
                    code="insufficient_stock",
                )
            for i in items:
                WORLD["stock"][i["product_id"]] -= i["quantity"]
            WORLD["reservations"][reservation_id] = {"items": items, "state": "reserved"}
        return {"reservation_id": reservation_id, "status": "reserved"}

    @rpc
    def grant_stock(self, grant_id, items):
        """Like the real catalog: up to the asked units of each available product, once per
        grant id (a repeat answers the first grant)."""
        WORLD["calls"].append(("grant_stock", grant_id))
        with LOCK:
            if grant_id not in WORLD["grants"]:
                granted = []
                for i in items:
                    pid, wanted = int(i["product_id"]), int(i["quantity"])
                    p = WORLD["products"].get(pid)
                    sellable = p is not None and p["available"] and pid not in WORLD["fail_reserve"]
                    k = min(wanted, WORLD["stock"].get(pid, 0)) if sellable else 0
                    if k:
                        WORLD["stock"][pid] -= k
                        WORLD["allotted"][pid] = WORLD["allotted"].get(pid, 0) + k
                    price = p["price_fen"] if p is not None else None
                    granted.append({"product_id": pid, "quantity": k, "price_fen": price})
                WORLD["grants"][grant_id] = granted
                if WORLD["lose_grant_answer"]:
                    WORLD["lose_grant_answer"] -= 1
                    raise RuntimeError("the answer was lost on its way back")
        return {"grant_id": grant_id, "items": WORLD["grants"][grant_id]}

    @reliable_event_handler("orders", "order_paid")
    def on_order_paid(self, event):
        """Like the real catalog: a paid order's reservation is committed from order_paid; a
        pool order's sale is recorded (once) and leaves the allotted units."""
        data = event["data"]
        reservation_id = data.get("reservation_id")
        if reservation_id and data.get("allotted"):
            if WORLD["fail_commit"]:
                raise RuntimeError("catalog hiccup")  # redelivered until it goes through
            with LOCK:
                if reservation_id not in WORLD["reservations"]:
                    lines = [
                        {"product_id": ln["product_id"], "quantity": ln["quantity"]}
                        for ln in data["lines"]
                    ]
                    WORLD["reservations"][reservation_id] = {"items": lines, "state": "committed"}
                    for ln in lines:
                        WORLD["allotted"][ln["product_id"]] -= ln["quantity"]
        elif reservation_id:
            self.commit_stock(reservation_id)

    @rpc
    def commit_stock(self, reservation_id):
        WORLD["calls"].append(("commit_stock", reservation_id))
        if WORLD["fail_commit"]:
            raise RuntimeError("catalog hiccup")
        with LOCK:
            r = WORLD["reservations"].get(reservation_id)
            if r is None:
                raise NotFound("no such reservation")
            if r["state"] == "released":
                raise Conflict("reservation released")
            if r["state"] == "reserved":
                r["state"] = "committed"
        return {"reservation_id": reservation_id, "status": "committed"}

    @rpc
    def release_stock(self, reservation_id, paid=False, items=None):
        WORLD["calls"].append(("release_stock", reservation_id))
        with LOCK:
            r = WORLD["reservations"].get(reservation_id)
            if r is None and paid and items:  # a pool order refunded before order_paid came
                for i in items:
                    WORLD["stock"][i["product_id"]] += i["quantity"]
                    WORLD["allotted"][i["product_id"]] -= i["quantity"]
                WORLD["reservations"][reservation_id] = {"items": items, "state": "returned"}
                return {"reservation_id": reservation_id, "status": "returned"}
            if r is None or r["state"] in ("released", "returned"):
                return {"reservation_id": reservation_id, "status": r["state"] if r else "released"}
            for i in r["items"]:
                WORLD["stock"][i["product_id"]] += i["quantity"]
            r["state"] = "returned" if paid else "released"
        return {"reservation_id": reservation_id, "status": r["state"]}


class FakeShop(_Platform):
    name = "shop"

    @rpc
    def get_shop(self, shop_id):
        shop = WORLD["shops"].get(int(shop_id))
        if shop is None:
            raise NotFound("no shop")
        return shop

    @rpc
    def carried_products(self, shop_id, product_ids):
        """The shop's selections (``WORLD["selections"][shop_id]``; not set: everything)."""
        chosen = WORLD.get("selections", {}).get(int(shop_id))
        return [p for p in product_ids if chosen is None or p in chosen]

    @rpc
    def get_shop_by_number(self, shop_number):
        for shop in WORLD["shops"].values():
            if shop["shop_number"] == shop_number:
                return shop
        raise NotFound("no shop with this number")

    @rpc
    def get_keeper_contact(self, shop_id):
        shop = WORLD["shops"][int(shop_id)]
        member = WORLD["members"][shop["member_id"]]
        return {
            "shop_id": shop["id"],
            "shop_number": shop["shop_number"],
            "display_name": shop["display_name"],
            "member_id": shop["member_id"],
            "nickname": member["nickname"],
            "phone": member["phone"],
        }


class FakeShare(_Platform):
    name = "share"

    @rpc
    def resolve(self, text, visitor_id=None, kind="resolve"):
        for code, share in WORLD["shares"].items():
            if code in text:
                return share
        raise NotFound("no share code in this text")

    @rpc
    def last_visit(self, visitor_id, since):
        visit = WORLD["visits"].get(str(visitor_id))
        if visit is None or clock.parse(visit["at"]) < clock.parse(since):
            return None
        return visit


class FakePayouts(_Platform):
    name = "payouts"


class EventRecorder:
    """What orders publishes. Its packed streams (``OUTBOX_PACKED_EVENTS``) arrive as packs,
    which only ``shared.events`` handlers unpack; the rest through nameko's plain handler."""

    name = "orders_event_recorder"

    @reliable_event_handler("orders", "order_paid")
    def paid(self, env):
        EVENTS.append(env)

    @plain_event_handler("orders", "order_shipped")
    def shipped(self, env):
        EVENTS.append(env)

    @reliable_event_handler("orders", "order_received")
    def received(self, env):
        EVENTS.append(env)

    @reliable_event_handler("orders", "order_completed")
    def completed(self, env):
        EVENTS.append(env)

    @plain_event_handler("orders", "order_refunded")
    def refunded(self, env):
        EVENTS.append(env)

    @plain_event_handler("orders", "order_expired")
    def expired(self, env):
        EVENTS.append(env)

    @plain_event_handler("orders", "order_cancelled")
    def cancelled(self, env):
        EVENTS.append(env)

    @plain_event_handler("orders", "refund_escalated")
    def escalated(self, env):
        EVENTS.append(env)
