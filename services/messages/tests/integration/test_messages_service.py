"""The real messages service on real RabbitMQ and PostgreSQL (orders, catalog and shop are
fakes): a thread through the gateway's RPCs, escalation by the platform clock, and an event
delivered twice that notifies once."""

from __future__ import annotations

import contextlib

import pytest
from nameko.rpc import rpc
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import create_engine, text

from shared.db import envelope
from shared.errors import NotFound
from shared.testing import wait_drained, wait_for

BUYER, KEEPER, SUPPLIER, SHOP = 41, 40, 7, 5
ORDER = {
    "order_id": 1234,
    "status": "paid",
    "buyer_id": BUYER,
    "supplier_id": SUPPLIER,
    "shop_id": SHOP,
    "shop_number": "123456",
    "share_id": None,
    "keeper_member_id": KEEPER,
    "items": [{"product_id": 101, "title": "滇红茶", "price_paid_fen": 12_800}],
}


class FakeOrders:
    name = "orders"

    @rpc
    def order_parties(self, order_id):
        if int(order_id) != ORDER["order_id"]:
            raise NotFound("no order", code="order_not_found")
        return ORDER

    @rpc
    def set_clock(self, now):
        return {"now": now}


class FakeCatalog:
    name = "catalog"

    @rpc
    def get_products(self, ids):
        return [{"id": 101, "title": "滇红茶", "faq": [{"q": "保质期", "a": "18个月"}]}]

    @rpc
    def get_supplier_contact(self, supplier_id):
        return {"supplier_id": SUPPLIER, "name": "Seven", "phone": "02177770000"}


class FakeShop:
    name = "shop"

    @rpc
    def get_keeper_contact(self, shop_id):
        return {"member_id": KEEPER, "phone": "13900000040"}

    @rpc
    def get_member(self, member_id):
        return {"id": int(member_id), "phone": f"139000000{int(member_id)}"}

    @rpc
    def get_shop(self, shop_id):
        return {"id": SHOP, "shop_number": "123456", "display_name": "阿花小铺"}


def start(container_factory, service_config, make_database):
    fake_config = service_config("gateway")
    for fake in (FakeOrders, FakeCatalog, FakeShop):
        container_factory(fake, fake_config).start()
    db_url = make_database("messages")
    config = service_config(
        "messages", database_url=db_url, MESSAGES_TIMER_SECONDS=0.2, XIAOPU_TEST_MODE="1"
    )
    from messages.service import MessagesService

    container_factory(MessagesService, config).start()
    return config, db_url


def sandbox(db_url: str) -> list[tuple[str, str]]:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text('SELECT "to", template FROM sandbox_messages ORDER BY id')).all()
    engine.dispose()
    return [(r[0], r[1]) for r in rows]


def test_a_thread_escalates_by_the_platform_clock_and_outsiders_get_404(
    container_factory, service_config, make_database
):
    config, _ = start(container_factory, service_config, make_database)
    buyer = {"role": "member", "id": str(BUYER)}
    with ServiceRpcProxy("messages", config) as messages:
        asked = messages.open_order_thread(1234, buyer, {"topic": "product", "text": "保质期?"})
        assert asked["routed_to"] == "keeper"
        view = messages.get_thread(asked["id"], {"role": "member", "id": str(KEEPER)})
        assert view["product_facts"]["faq"][0]["a"] == "18个月"
        assert view["suggested_answers"][0]["a"] == "18个月"
        for outsider in ({"role": "member", "id": "99"}, {"role": "supplier", "id": "8"}):
            with pytest.raises(NotFound, match="not found"):
                messages.get_thread(asked["id"], outsider)
        messages.set_clock("2099-01-01T00:00:00Z")
        try:
            wait_for(lambda: messages.get_thread(asked["id"], buyer)["status"] == "escalated")
        finally:
            messages.set_clock(None)
        queue = messages.list_threads({"role": "admin", "id": "admin"}, {"status": "escalated"})
        assert [t["id"] for t in queue["items"]] == [asked["id"]]


def test_an_event_delivered_twice_notifies_once(
    container_factory, service_config, make_database, rabbit_config
):
    config, db_url = start(container_factory, service_config, make_database)
    paid = envelope(
        "order_paid",
        {
            "order_id": 1234,
            "buyer_id": BUYER,
            "supplier_id": SUPPLIER,
            "shop_id": SHOP,
            "share_id": None,
            "self_referral": False,
            "paid_fen": 12_800,
            "paid_at": "2030-01-01T00:00:00Z",
            "lines": [
                {
                    "product_id": 101,
                    "title": "滇红茶",
                    "quantity": 1,
                    "unit_price_fen": 12_800,
                    "amount_fen": 12_800,
                    "commission_bps": 2_000,
                }
            ],
        },
        "orders",
    )
    dispatch = event_dispatcher(config)
    dispatch("orders", "order_paid", paid)
    expected = [("13900000040", "new_order"), ("02177770000", "order_to_ship")]
    wait_for(lambda: sorted(sandbox(db_url)) == sorted(expected))
    dispatch("orders", "order_paid", paid)  # redelivered: the same event id
    wait_drained(rabbit_config["vhost"], ignore=lambda q: q.endswith((".dead", ".retry")))
    with ServiceRpcProxy("messages", config) as messages:
        messages.run_timers()
    assert sorted(sandbox(db_url)) == sorted(expected)


@contextlib.contextmanager
def statements_during(engine):
    """Every statement ``engine`` executes inside the block (one per execute)."""
    from sqlalchemy import event as sa_event

    seen: list[str] = []

    def count(conn, cursor, statement, *rest):
        seen.append(statement)

    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)


def test_finish_records_every_rows_ending_in_one_statement(make_database):
    """``notifications.finish`` on the database in use (PostgreSQL: one UPDATE from arrays;
    SQLite: executemany): each row's status, person and channels, ``sent_at`` only if sent."""
    import json
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from sqlalchemy.orm import Session

    from messages.handlers import notifications
    from shared import clock
    from shared.db import make_engine

    engine = make_engine(make_database("messages"))
    now = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)
    endings = [
        {"status": "sent", "person": "member:41", "channels": ["sms", "wechat"]},
        {"status": "failed", "person": "supplier:7", "channels": []},
        {"status": "muted", "person": "member:40"},
        {"status": "pending"},  # given back for the next tick
    ]
    try:
        with Session(engine) as session, session.begin():
            uow = SimpleNamespace(session=session)
            for n in range(len(endings)):
                notifications.owe(uow, f"ev-{n}", f"member:{n}", "order_shipped", "t", now)
            ids = list(session.execute(text("SELECT id FROM notifications ORDER BY id")).scalars())
            with statements_during(engine) as statements:
                notifications.finish(
                    uow, [{"id": i, **e} for i, e in zip(ids, endings, strict=True)], now
                )
        with engine.connect() as conn:
            got = conn.execute(
                text("SELECT status, person, channels, sent_at FROM notifications ORDER BY id")
            ).all()
    finally:
        engine.dispose()
    assert len(statements) == 1
    assert [(r.status, r.person) for r in got] == [
        ("sent", "member:41"),
        ("failed", "supplier:7"),
        ("muted", "member:40"),
        ("pending", None),
    ]
    assert [json.loads(r.channels) if isinstance(r.channels, str) else r.channels for r in got] == [
        ["sms", "wechat"],
        [],
        [],
        [],
    ]
    assert [clock.as_utc(clock.parse(r.sent_at)) if r.sent_at else None for r in got] == [
        now,
        None,
        None,
        None,
    ]


def test_owe_all_records_a_batchs_rows_in_one_statement_each_triple_once(make_database):
    """``notifications.owe_all`` (a batch of ``order_paid``) on the database in use
    (PostgreSQL: one INSERT from arrays; SQLite: executemany): every row owed, a (event,
    recipient, kind) owed already — by an earlier delivery — left exactly as it was."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from sqlalchemy.orm import Session

    from messages.handlers import notifications
    from shared.db import make_engine

    engine = make_engine(make_database("messages"))
    earlier = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    now = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)
    try:
        with Session(engine) as session, session.begin():
            uow = SimpleNamespace(session=session)
            notifications.owe(uow, "ev-1", "supplier:7", "order_to_ship", "first", earlier)
            rows = [
                notifications.owed("ev-1", "supplier:7", "order_to_ship", "again", now),
                notifications.owed("ev-2", "shop:3", "new_order", "新订单 2", now),
                notifications.owed("ev-2", "supplier:7", "order_to_ship", "待发货 2", now),
            ]
            with statements_during(engine) as statements:
                notifications.owe_all(uow, rows, now)
        with engine.connect() as conn:
            got = conn.execute(
                text(
                    "SELECT event_id, recipient, kind, text, status FROM notifications ORDER BY id"
                )
            ).all()
    finally:
        engine.dispose()
    assert len(statements) == 1
    assert [tuple(r) for r in got] == [
        ("ev-1", "supplier:7", "order_to_ship", "first", "pending"),
        ("ev-2", "shop:3", "new_order", "新订单 2", "pending"),
        ("ev-2", "supplier:7", "order_to_ship", "待发货 2", "pending"),
    ]
