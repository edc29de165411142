"""The seed's question, end to end (issue 15): a buyer who bought through a keeper's share asks
about the product, the keeper answers with the supplier's FAQ at hand, forwards the follow-up to
the supplier, who answers in the same thread; a pre-sale question reaches the keeper and,
unanswered, escalates to the platform; outsiders see nothing; the contacts card shows no
personal phone; every notification is sent once per event, and a redelivered event sends
nothing more.

Every service is its own process on its own RabbitMQ vhost, PostgreSQL databases and port (a
platform of this module's own: it moves the clock), spoken to only over HTTP — except the
redelivery, which republishes the producers' own outbox rows to the broker as the relay would.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import pytest
from kombu import Connection
from nameko.standalone.events import get_event_exchange
from sqlalchemy import create_engine, text

from benchmarks.common import platform_on_postgres
from shared.testing import wait_drained
from tests.e2e.conftest import Api
from tests.e2e.story import checkout, eventually, ok, payout_run, pick, set_clock, settle, share

FAQ = [
    {"q": "保质期多久？", "a": "未开封 18 个月，开封后请密封防潮。"},
    {"q": "怎么冲泡比较好喝", "a": "95°C 水，第一泡 10 秒洗茶。"},
]


def phone(prefix: str) -> str:
    return f"{prefix}{random.randint(10_000_000, 99_999_999)}"


@pytest.fixture(scope="module")
def conv(tmp_path_factory):
    logs = tmp_path_factory.mktemp("conversation-logs")
    with platform_on_postgres(log_dir=logs) as ctx:
        api = Api(ctx)
        yield api
        set_clock(api, None)


def new_member(api, phone_no: str, nickname: str) -> dict:
    body = {
        "nickname": nickname,
        "phone": phone_no,
        "credit_score": 760,
        "real_name_verified": True,
    }
    return ok(api.post("/api/v1/members", json=body), 201)


def new_supplier(api, phone_no: str, name: str) -> dict:
    body = {
        "name": name,
        "registered_capital_fen": 200_000_000,
        "general_taxpayer": True,
        "brand_authorization_levels": 1,
        "contact": {"phone": phone_no, "wechat": f"wx-{phone_no}", "email": f"{phone_no}@ex.cn"},
    }
    sup = ok(api.post("/api/v1/suppliers", json=body), 201)
    ok(
        api.post(
            f"/api/v1/suppliers/{sup['id']}/deposit",
            token=sup["token"],
            json={"amount_fen": 1_000_000},
        )
    )
    return sup


def sent(api, to: str) -> Counter:
    items = ok(
        api.get("/api/v1/admin/sandbox/messages", params={"to": to, "limit": 500}, token=api.admin)
    )["items"]
    return Counter(m["template"] for m in items if m.get("source") == "messages")


def thread(api, tid: int, who: dict) -> dict:
    return ok(api.get(f"/api/v1/inquiries/{tid}", token=who["token"]))


def say(api, tid: int, who: dict, words: str) -> dict:
    return ok(
        api.post(f"/api/v1/inquiries/{tid}/messages", token=who["token"], json={"text": words}), 201
    )


def republish(api, service: str, event_type: str) -> int:
    """Publish again every ``event_type`` row of ``service``'s outbox, exactly as its relay
    did (same envelope, same id): a redelivery."""
    ctx = api.ctx
    engine = create_engine(ctx.db_urls[service])
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT payload FROM outbox WHERE event_type = :t"), {"t": event_type}
        ).all()
    engine.dispose()
    exchange = get_event_exchange(service, {"AMQP_URI": ctx.amqp_uri})
    with Connection(ctx.amqp_uri) as connection:
        producer = connection.Producer(serializer="json")
        exchange(producer.channel).declare()
        for (payload,) in rows:
            producer.publish(json.loads(payload), exchange=exchange, routing_key=event_type)
    return len(rows)


def test_the_buyer_asks_the_keeper_answers_forwards_and_the_supplier_answers(conv):
    api = conv
    keeper_phone, buyer_phone, supplier_phone = phone("135"), phone("136"), phone("137")
    sup = new_supplier(api, supplier_phone, "山野茶业")
    other_sup = new_supplier(api, phone("138"), "别家供货商")
    tea = ok(
        api.post(
            "/api/v1/products",
            token=sup["token"],
            json={
                "title": "云南古树滇红茶 250g",
                "category": "food_health",
                "price_fen": 12_800,
                "stock": 100,
                "commission_bps": 2_000,
                "market_commission_bps": 1_900,
                "reference_price_fen": 13_800,
                "brand": "山野",
                "description": "产地直发。",
            },
        ),
        201,
    )
    facts = ok(
        api.put(
            f"/api/v1/products/{tea['id']}/faq",
            token=sup["token"],
            json={"faq": FAQ, "specs": {"净含量": "250g"}, "after_sales_policy": "七天无理由退换"},
        )
    )
    assert facts["faq"] == FAQ
    assert ok(api.get(f"/api/v1/products/{tea['id']}"))["faq"] == FAQ

    keeper = new_member(api, keeper_phone, "阿花")
    shop = ok(api.post("/api/v1/shops", token=keeper["token"], json={"name": "阿花好物"}), 201)
    shop = ok(api.post(f"/api/v1/shops/{shop['id']}/verification", token=keeper["token"]))
    pick(api, keeper, shop, tea)
    code = share(api, keeper, shop, tea)["code"]

    buyer = new_member(api, buyer_phone, "小王")
    stranger = new_member(api, phone("139"), "路人")
    [order] = checkout(api, buyer, [(tea, 1)], share_code=code)
    ok(api.post(f"/api/v1/orders/{order['id']}/pay", token=buyer["token"]))

    # the buyer asks after paying: routed to the keeper, with a deadline
    asked = ok(
        api.post(
            f"/api/v1/orders/{order['id']}/inquiries",
            token=buyer["token"],
            json={"topic": "product", "text": "请问这个茶的保质期多久？"},
        ),
        201,
    )
    tid = asked["id"]
    assert (asked["routed_to"], asked["status"]) == ("keeper", "open") and asked["answer_due_at"]

    # the keeper sees it, with the supplier's FAQ in the facts and a suggested answer
    box = ok(api.get("/api/v1/inquiries", token=keeper["token"], params={"as": "keeper"}))
    assert tid in [t["id"] for t in box["items"]]
    seen = thread(api, tid, keeper)
    assert seen["product_facts"]["faq"] == FAQ
    assert seen["product_facts"]["after_sales_policy"] == "七天无理由退换"
    assert seen["product_facts"]["title"] == "云南古树滇红茶 250g"  # as sold
    assert seen["suggested_answers"][0]["a"] == FAQ[0]["a"]

    # outsiders: the same 404 as for a thread that does not exist
    for outsider in (stranger, other_sup, sup):  # the supplier: not routed to it yet
        assert api.get(f"/api/v1/inquiries/{tid}", token=outsider["token"]).status_code == 404
        assert (
            api.post(
                f"/api/v1/inquiries/{tid}/messages", token=outsider["token"], json={"text": "x"}
            ).status_code
            == 404
        )
    missing = api.get("/api/v1/inquiries/1", token=stranger["token"])
    assert missing.status_code == 404

    assert say(api, tid, keeper, FAQ[0]["a"])["status"] == "answered"
    assert say(api, tid, buyer, "那开封后能放多久？怎么保存？")["status"] == "open"
    forwarded = ok(
        api.post(
            f"/api/v1/inquiries/{tid}/forward", token=keeper["token"], json={"note": "请厂家解答"}
        )
    )
    assert (forwarded["routed_to"], forwarded["status"]) == ("supplier", "forwarded")
    supplier_box = ok(api.get("/api/v1/inquiries", token=sup["token"]))
    assert tid in [t["id"] for t in supplier_box["items"]]
    assert say(api, tid, sup, "开封后建议三个月内喝完，密封避光。")["status"] == "answered"
    assert api.get(f"/api/v1/inquiries/{tid}", token=other_sup["token"]).status_code == 404

    # the buyer sees both answers; the keeper keeps reading the thread
    words = [(m["from_role"], m["text"]) for m in thread(api, tid, buyer)["messages"]]
    assert ("keeper", FAQ[0]["a"]) in words
    assert ("supplier", "开封后建议三个月内喝完，密封避光。") in words
    assert thread(api, tid, keeper)["status"] == "answered"

    # the contacts card: the thread, the supplier's service contact, never the keeper's phone
    card = api.get(f"/api/v1/orders/{order['id']}/contacts", token=buyer["token"])
    assert card.status_code == 200, card.text
    assert keeper_phone not in card.text
    assert card.json()["pre_sales"]["role"] == "keeper"
    assert card.json()["pre_sales"]["contact"]["channel"] == "thread"
    assert card.json()["after_sales"]["phone"] == supplier_phone
    assert (
        api.get(f"/api/v1/orders/{order['id']}/contacts", token=stranger["token"]).status_code
        == 404
    )

    # a pre-sale question from the share reaches the keeper
    shopper = new_member(api, phone("133"), "想买的人")
    pre = ok(
        api.post(
            "/api/v1/inquiries",
            token=shopper["token"],
            json={"share_code": f"复制 {code} 打开", "product_id": tea["id"], "text": "有现货吗"},
        ),
        201,
    )
    assert (pre["routed_to"], pre["kind"]) == ("keeper", "pre_sale")
    box = ok(api.get("/api/v1/inquiries", token=keeper["token"]))
    assert pre["id"] in [t["id"] for t in box["items"]]

    # the order's life: shipped, a refund asked and refused, received
    ok(
        api.post(
            f"/api/v1/orders/{order['id']}/ship",
            token=sup["token"],
            json={"carrier": "顺丰", "tracking_no": "SF1000"},
        )
    )
    refund = ok(
        api.post(
            f"/api/v1/orders/{order['id']}/refunds",
            token=buyer["token"],
            json={"amount_fen": 100, "reason": "包装破了一角"},
        ),
        201,
    )
    ok(api.post(f"/api/v1/refunds/{refund['id']}/reject", token=sup["token"]))
    ok(api.post(f"/api/v1/orders/{order['id']}/confirm", token=buyer["token"]))

    # time passes: the unanswered pre-sale question escalates; the commission settles and pays
    later = datetime.now(UTC) + timedelta(days=16)
    set_clock(api, later.isoformat())
    queue = eventually(
        lambda: [
            t
            for t in ok(
                api.get("/api/v1/admin/inquiries", token=api.admin, params={"status": "escalated"})
            )["items"]
            if t["id"] == pre["id"]
        ]
    )
    assert queue[0]["status"] == "escalated"
    assert tid not in [t["id"] for t in queue]
    eventually(lambda: settle(api, later.isoformat()) and payout_run(api)["payouts"])
    ok(api.post(f"/api/v1/products/{tea['id']}/delist", token=sup["token"]))

    expected = {
        keeper_phone: {
            "new_order": 1,
            "question_to_answer": 3,  # the question, the follow-up, the pre-sale question
            "payout_sent": 1,
            "product_removed": 1,
        },
        supplier_phone: {"order_to_ship": 1, "question_to_answer": 1, "refund_to_decide": 1},
        buyer_phone: {"question_answered": 2, "order_shipped": 1, "refund_decided": 1},
    }
    for to, wanted in expected.items():
        eventually(lambda to=to, wanted=wanted: sent(api, to) == Counter(wanted))

    # redelivery: every event the notifications came from arrives again — nothing new is sent
    replayed = sum(
        republish(api, service, kind)
        for service, kind in (
            ("orders", "order_paid"),
            ("orders", "order_shipped"),
            ("orders", "refund_requested"),
            ("orders", "refund_decided"),
            ("payouts", "payout_paid"),
            ("catalog", "product_delisted"),
        )
    )
    assert replayed >= 6
    vhost = urlparse(api.ctx.amqp_uri).path.lstrip("/")
    wait_drained(vhost, ignore=lambda q: q.endswith((".dead", ".retry")) or "reply" in q)
    ok(api.post("/api/v1/admin/messages/run-timers", token=api.admin))
    for to, wanted in expected.items():
        assert sent(api, to) == Counter(wanted), to
