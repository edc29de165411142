"""The real share service and gateway; shop and catalog replaced by small fake nameko services."""

import base64
import io
import uuid

import pytest
from nameko.rpc import rpc
from nameko.standalone.events import event_dispatcher
from PIL import Image

from shared.errors import NotFound
from shared.testing import wait_drained
from shared.validation import not_found

FAKE = {"shops": {}, "selections": {}, "products": {}, "images": {}}


def photo_jpeg(size=(900, 1200)) -> bytes:
    grad = Image.linear_gradient("L").resize(size)
    img = Image.merge("RGB", (grad, grad.rotate(90).resize(size), Image.effect_noise(size, 30)))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


class FakeCatalog:
    name = "catalog"

    @rpc
    def get_product(self, product_id):
        product = FAKE["products"].get(int(product_id))
        if product is None:
            raise NotFound(f"product {product_id} not found")
        return dict(product)

    @rpc
    def get_image(self, image_ref):
        data = FAKE["images"].get(image_ref)
        if data is None:
            raise NotFound("no such image")
        return {"content_type": "image/jpeg", "data_b64": base64.b64encode(data).decode()}

    @rpc
    def echo(self, payload=None):
        return payload

    @rpc
    def health(self):
        return {"status": "ok"}


class FakeShop:
    name = "shop"

    @rpc
    def get_shop(self, shop_id):
        shop = FAKE["shops"].get(int(shop_id))
        if shop is None:
            raise not_found("shop", shop_id)  # what the shop service answers
        return dict(shop)

    @rpc
    def get_selection(self, shop_id, product_id):
        sel = FAKE["selections"].get((int(shop_id), int(product_id)))
        product = FAKE["products"].get(int(product_id)) or {}
        if sel is None:
            return {
                "shop_id": shop_id,
                "product_id": product_id,
                "selected": False,
                "reason": None,
                "available": False,
            }
        return {
            "shop_id": shop_id,
            "product_id": product_id,
            "selected": True,
            "reason": sel,
            "available": bool(product.get("available")),
        }

    @rpc
    def health(self):
        return {"status": "ok"}


def add_shop(shop_id, member_id, status="active", name="阿花"):
    FAKE["shops"][shop_id] = {
        "id": shop_id,
        "member_id": member_id,
        "shop_number": f"{100000 + shop_id}",
        "name": name,
        "display_name": f"{name}小铺",
        "status": status,
        "level": "newcomer",
        "level_bonus_bps": 0,
    }


def add_product(
    product_id, title="云南高山有机红茶 特级滇红", price_fen=3990, available=True, with_image=True
):
    ref = f"img-{product_id}" if with_image else None
    if ref:
        FAKE["images"][ref] = photo_jpeg()
    FAKE["products"][product_id] = {
        "id": product_id,
        "supplier_id": 1,
        "title": title,
        "category": "食品保健",
        "description": "",
        "brand": None,
        "price_fen": price_fen,
        "commission_bps": 1000,
        "commission_fen": price_fen // 10,
        "stock": 100,
        "status": "listed" if available else "delisted",
        "available": available,
        "image_url": None,
        "image_ref": ref,
    }


def select(shop_id, product_id, reason="我自己喝了三年，回甘很好！"):
    FAKE["selections"][(shop_id, product_id)] = reason


def dependency(container, attr_name):
    """A running container's dependency provider by the attribute name it is declared under."""
    return next(d for d in container.dependencies if d.attr_name == attr_name)


class Platform:
    def __init__(self, gateway, share, config, vhost):
        self.gateway = gateway
        self.url = gateway.url
        self.share = share
        self.config = config
        self.vhost = vhost

    def visits_in_flight(self) -> int:
        """Visits not yet in share's database: in the gateway's buffer (sent every 0.5 s), in
        share's buffer or being flushed, or in share's outbox (not yet announced)."""
        gateway_buffer = dependency(self.gateway.container, "share_landing_state").state.visits
        runtime = dependency(self.share, "runtime").state
        outbox = dependency(self.share, "db")
        with outbox.sessionmaker() as session:
            from sqlalchemy import func, select

            table = outbox.metadata.tables["outbox"]
            unpublished = session.execute(
                select(func.count()).select_from(table).where(table.c.published_at.is_(None))
            ).scalar_one()
        return len(gateway_buffer) + len(runtime.pending_visits()) + unpublished

    def drained(self) -> None:
        """Nothing more is on its way: no visit buffered anywhere, no event unpublished, every
        queue of this test's vhost empty (``shared.testing.wait_drained``)."""
        wait_drained(self.vhost, backlogs=self.visits_in_flight)

    def dispatch(self, source, event_type, data, event_id=None):
        dispatch = event_dispatcher(self.config)
        dispatch(
            source,
            event_type,
            {
                "id": event_id or str(uuid.uuid4()),
                "type": event_type,
                "version": 1,
                "source": source,
                "occurred_at": "2026-11-24T00:00:00Z",
                "correlation_id": None,
                "data": data,
            },
        )


@pytest.fixture
def platform(gateway, start_service, container_factory, service_config, rabbit_config):
    for table in FAKE.values():
        table.clear()
    config = service_config("gateway")
    for fake in (FakeCatalog, FakeShop):
        container_factory(fake, config).start()
    share = start_service("share", RULES={"landing_cache_seconds": 0.3, "facts_ttl_seconds": 60})
    return Platform(gateway, share, config, rabbit_config["vhost"])
