"""Handlers through the fake unit of work (no server): threads, contacts, notifications owed
once, sending through the sandbox adapters with preferences and the hourly limit."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from messages import queries
from messages.channels import SandboxChannel
from messages.delivery import Directory, dispatch
from messages.domain import MessagesRules
from messages.handlers import contacts, notifications, threads
from messages.models import Base, Notification, SandboxMessage, Thread
from shared.contracts.events import (
    OrderLine,
    OrderPaid,
    OrderRefunded,
    OrderStateChanged,
    PayoutPaid,
    ProductSnapshot,
    RefundDecided,
    RefundEscalated,
    RefundRequested,
    SelectionChanged,
)
from shared.contracts.messages import (
    ForwardIn,
    MessageIn,
    OrderThreadIn,
    PreferencesIn,
    ThreadQuery,
    Viewer,
)
from shared.errors import Conflict, NotFound, ServiceUnavailable
from shared.lru import LRU
from shared.testing import FakeUnitOfWork

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
RULES = MessagesRules()
BUYER, KEEPER, SUPPLIER, SHOP = 41, 40, 7, 5
BUYER_V = Viewer(role="member", id=str(BUYER))
KEEPER_V = Viewer(role="member", id=str(KEEPER))
SUPPLIER_V = Viewer(role="supplier", id=str(SUPPLIER))
STRANGER_V = Viewer(role="member", id="99")
OTHER_SUPPLIER_V = Viewer(role="supplier", id="8")
ADMIN_V = Viewer(role="admin", id="admin")
ORDER = {
    "order_id": 1234,
    "status": "paid",
    "buyer_id": BUYER,
    "supplier_id": SUPPLIER,
    "shop_id": SHOP,
    "shop_number": "123456",
    "share_id": "share-abc",
    "keeper_member_id": KEEPER,
    "items": [
        {
            "product_id": 101,
            "title": "云南古树滇红茶",
            "description": "产地直发",
            "price_paid_fen": 12_800,
            "quantity": 1,
            "amount_fen": 12_800,
        }
    ],
}


@pytest.fixture
def uow():
    return FakeUnitOfWork(Base.metadata)


def owed(uow) -> list[tuple[str, str]]:
    rows = uow.session.scalars(select(Notification).order_by(Notification.id)).all()
    return [(n.recipient, n.kind) for n in rows]


def ask(uow, topic="product", text="保质期多久？", order=ORDER) -> dict:
    return threads.open_order_thread(
        uow, RULES, BUYER_V, order, OrderThreadIn(topic=topic, text=text), NOW
    )


# --- threads ---------------------------------------------------------------------------------
def test_a_product_question_after_paying_goes_to_the_keeper_with_a_deadline(uow):
    asked = ask(uow)
    assert (asked["routed_to"], asked["status"]) == ("keeper", "open")
    assert asked["answer_due_at"] == "2030-01-02T12:00:00Z"
    assert 0 < asked["id"] < 2**31  # a random int id
    assert owed(uow) == [(f"shop:{SHOP}", "question_to_answer")]


def test_a_shipping_question_goes_to_the_supplier(uow):
    asked = ask(uow, topic="shipping", text="到哪了?")
    assert asked["routed_to"] == "supplier"
    assert owed(uow) == [(f"supplier:{SUPPLIER}", "question_to_answer")]
    view, _ = queries.get_thread(uow.session, asked["id"], SUPPLIER_V)
    assert view["viewer"] == "supplier"


def test_only_the_buyer_asks_about_an_order(uow):
    with pytest.raises(NotFound):
        threads.open_order_thread(
            uow, RULES, STRANGER_V, ORDER, OrderThreadIn(topic="product", text="?"), NOW
        )


def test_the_whole_conversation(uow):
    tid = ask(uow)["id"]
    later = NOW + timedelta(hours=1)
    answered = threads.post_message(uow, RULES, tid, KEEPER_V, MessageIn(text="18个月"), later)
    assert (answered["status"], answered["answer_due_at"]) == ("answered", None)
    follow = threads.post_message(uow, RULES, tid, BUYER_V, MessageIn(text="怎么泡?"), later)
    assert follow["status"] == "open" and follow["answer_due_at"] == "2030-01-02T13:00:00Z"
    # another supplier, a stranger: the thread does not exist for them
    for outsider in (STRANGER_V, OTHER_SUPPLIER_V, SUPPLIER_V):
        with pytest.raises(NotFound):
            queries.get_thread(uow.session, tid, outsider)
    forwarded = threads.forward(uow, RULES, tid, KEEPER_V, ForwardIn(note="请供货商回答"), later)
    assert (forwarded["routed_to"], forwarded["status"]) == ("supplier", "forwarded")
    with pytest.raises(Conflict):
        threads.forward(uow, RULES, tid, KEEPER_V, ForwardIn(), later)
    done = threads.post_message(uow, RULES, tid, SUPPLIER_V, MessageIn(text="95度三分钟"), later)
    assert done["status"] == "answered"
    keeper_view, _ = queries.get_thread(uow.session, tid, KEEPER_V)  # the keeper keeps reading
    buyer_view, _ = queries.get_thread(uow.session, tid, BUYER_V)
    said = [(m["from_role"], m["text"]) for m in buyer_view["messages"]]
    assert said == [
        ("buyer", "保质期多久？"),
        ("keeper", "18个月"),
        ("buyer", "怎么泡?"),
        ("keeper", "请供货商回答"),
        ("supplier", "95度三分钟"),
    ]
    assert keeper_view["messages"] == buyer_view["messages"]
    assert [k for _, k in owed(uow)] == [
        "question_to_answer",  # keeper: the question
        "question_answered",  # buyer: the keeper's answer
        "question_to_answer",  # keeper: the follow-up
        "question_to_answer",  # supplier: forwarded
        "question_answered",  # buyer: the supplier's answer
    ]
    assert owed(uow)[3][0] == f"supplier:{SUPPLIER}"
    closed = threads.close(uow, tid, BUYER_V, later)
    assert closed["status"] == "closed"
    with pytest.raises(Conflict):
        threads.post_message(uow, RULES, tid, BUYER_V, MessageIn(text="?"), later)


def test_an_unanswered_thread_escalates_after_its_deadline(uow):
    tid = ask(uow)["id"]
    assert threads.overdue(uow.session, NOW + timedelta(hours=23)) == []
    late = NOW + timedelta(hours=24, seconds=1)
    assert threads.overdue(uow.session, late) == [tid]
    assert threads.escalate(uow, tid, late) is True
    assert threads.escalate(uow, tid, late) is False  # once
    queue = queries.list_threads(
        uow.session, ADMIN_V, ThreadQuery.model_validate({"status": "escalated"})
    )
    assert [t["id"] for t in queue["items"]] == [tid]
    assert queue["items"][0]["last_message"]["from_role"] == "platform"


def test_lists_are_mine(uow):
    tid = ask(uow)["id"]
    other = dict(ORDER, order_id=99, buyer_id=77, keeper_member_id=None, shop_id=None)
    threads.open_order_thread(
        uow,
        RULES,
        Viewer(role="member", id="77"),
        other,
        OrderThreadIn(topic="other", text="?"),
        NOW,
    )
    mine = queries.list_threads(uow.session, BUYER_V, ThreadQuery())
    keeper = queries.list_threads(
        uow.session, KEEPER_V, ThreadQuery.model_validate({"as": "keeper"})
    )
    supplier = queries.list_threads(uow.session, SUPPLIER_V, ThreadQuery())
    assert [t["id"] for t in mine["items"]] == [tid] == [t["id"] for t in keeper["items"]]
    assert [t["order_id"] for t in supplier["items"]] == [99]  # routed to it: no keeper
    assert queries.list_threads(uow.session, STRANGER_V, ThreadQuery())["items"] == []
    # a shipping question goes straight to the supplier: not in the keeper's list
    shipping = ask(uow, topic="shipping", text="到哪了?")["id"]
    keeper = queries.list_threads(uow.session, KEEPER_V, ThreadQuery())
    assert shipping not in [t["id"] for t in keeper["items"]]
    assert queries.get_thread(uow.session, shipping, KEEPER_V)[0]["viewer"] == "keeper"


def test_the_thread_shows_the_snapshot_the_current_faq_and_suggestions(uow):
    tid = ask(uow)["id"]
    view, snapshot = queries.get_thread(uow.session, tid, KEEPER_V)
    current = {
        "title": "滇红茶（新包装）",
        "price_fen": 13_800,
        "available": True,
        "faq": [{"q": "保质期多久", "a": "18个月"}],
        "specs": {"净含量": "250g"},
        "after_sales_policy": "七天无理由",
    }
    out = queries.with_facts(view, snapshot, current, RULES)
    facts = out["product_facts"]
    assert facts["title"] == "云南古树滇红茶" and facts["price_paid_fen"] == 12_800  # as sold
    assert facts["current"]["price_fen"] == 13_800
    assert facts["faq"] == current["faq"] and facts["after_sales_policy"] == "七天无理由"
    assert out["suggested_answers"][0]["a"] == "18个月"
    buyer_view, _ = queries.get_thread(uow.session, tid, BUYER_V)
    assert "suggested_answers" not in queries.with_facts(buyer_view, snapshot, current, RULES)


# --- contacts ----------------------------------------------------------------------------------
def test_contacts_never_show_the_keepers_phone():
    party = contacts.order_party(ORDER, BUYER_V)
    supplier = {"name": "Seven", "phone": "021-7777", "wechat": "seven", "email": None}
    shop = {"shop_number": "123456", "display_name": "阿花小铺", "phone": "13900000000"}
    card = contacts.order_contacts(ORDER, party, supplier, shop, [])
    assert card["pre_sales"]["role"] == "keeper" and "phone" not in card["pre_sales"]
    assert "13900000000" not in str(card)
    assert card["pre_sales"]["contact"]["channel"] == "thread"
    assert card["after_sales"]["phone"] == "021-7777"
    assert card["handles"]["refund"] == "supplier" and card["handles"]["product"] == "keeper"
    with pytest.raises(NotFound):
        contacts.order_party(ORDER, STRANGER_V)


# --- notifications owed ------------------------------------------------------------------------
def paid_event(self_referral=False) -> OrderPaid:
    return OrderPaid(
        order_id=1234,
        buyer_id=BUYER,
        supplier_id=SUPPLIER,
        shop_id=SHOP,
        share_id="share-abc",
        self_referral=self_referral,
        paid_fen=12_800,
        paid_at="2030-01-01T12:00:00Z",
        lines=[
            OrderLine(
                product_id=101,
                title="滇红茶",
                quantity=1,
                unit_price_fen=12_800,
                amount_fen=12_800,
                commission_bps=2_000,
            )
        ],
    )


def test_each_event_owes_each_recipient_once(uow):
    assert notifications.order_paid(uow, "ev-1", paid_event(), NOW) == 2
    assert notifications.order_paid(uow, "ev-1", paid_event(), NOW) == 0  # replayed
    texts = {k: t for (_, k), t in zip(owed(uow), [n.text for n in _rows(uow)], strict=True)}
    assert "预计佣金 ¥25.60" in texts["new_order"]
    shipped = OrderStateChanged(
        order_id=1234, supplier_id=SUPPLIER, shop_id=SHOP, status="shipped", at="x", buyer_id=BUYER
    )
    notifications.order_shipped(uow, "ev-2", shipped, NOW)
    requested = RefundRequested(
        order_id=1234,
        refund_id=9,
        supplier_id=SUPPLIER,
        shop_id=SHOP,
        amount_fen=100,
        at=NOW.isoformat(),
    )
    notifications.refund_requested(uow, RULES, "ev-3", requested, NOW + timedelta(hours=2))
    refunded = OrderRefunded(
        order_id=1234,
        refund_id=9,
        supplier_id=SUPPLIER,
        shop_id=SHOP,
        amount_fen=100,
        paid_fen=12_800,
        refunded_total_fen=100,
        at="x",
        buyer_id=BUYER,
    )
    notifications.order_refunded(uow, "ev-4", refunded, NOW)
    approved = RefundDecided(
        order_id=1234,
        refund_id=9,
        supplier_id=SUPPLIER,
        shop_id=SHOP,
        decision="approved",
        amount_fen=100,
        at="x",
    )
    assert notifications.refund_decided(uow, "ev-5", approved, NOW) == 0  # told by order_refunded
    rejected = approved.model_copy(update={"decision": "rejected", "refund_id": 10})
    assert notifications.refund_decided(uow, "ev-6", rejected, NOW) == 1
    notifications.selection_changed(
        uow, SelectionChanged(shop_id=SHOP, product_id=101, selected=True), NOW
    )
    notifications.selection_changed(
        uow, SelectionChanged(shop_id=6, product_id=101, selected=True), NOW
    )
    notifications.selection_changed(
        uow, SelectionChanged(shop_id=6, product_id=101, selected=False), NOW
    )
    delisted = ProductSnapshot(
        product_id=101,
        supplier_id=SUPPLIER,
        title="滇红茶",
        category="food_health",
        price_fen=12_800,
        commission_bps=2_000,
        stock=1,
        status="delisted",
        available=False,
    )
    assert notifications.product_delisted(uow, "ev-7", delisted, NOW) == 1  # shop 6 dropped it
    notifications.payout_paid(
        uow, "ev-8", PayoutPaid(payout_id=1, shop_id=SHOP, amount_fen=5_000, run_id=1), NOW
    )
    assert owed(uow) == [
        (f"shop:{SHOP}", "new_order"),
        (f"supplier:{SUPPLIER}", "order_to_ship"),
        (f"member:{BUYER}", "order_shipped"),
        (f"supplier:{SUPPLIER}", "refund_to_decide"),
        (f"member:{BUYER}", "refund_decided"),
        ("order:1234", "refund_decided"),
        (f"shop:{SHOP}", "product_removed"),
        (f"shop:{SHOP}", "payout_sent"),
    ]
    assert "46 小时" in _rows(uow)[3].text


def test_an_escalated_refund_tells_the_buyer_and_the_supplier_once(uow):
    escalated = RefundEscalated(
        order_id=1234,
        refund_id=9,
        supplier_id=SUPPLIER,
        amount_fen=3_000,
        at=NOW.isoformat(),
        buyer_id=BUYER,
    )
    assert notifications.refund_escalated(uow, "ev-9", escalated, NOW) == 2
    assert notifications.refund_escalated(uow, "ev-9", escalated, NOW) == 0  # redelivered
    told = {r.recipient: r.text for r in _rows(uow) if r.kind == "refund_escalated"}
    assert set(told) == {f"member:{BUYER}", f"supplier:{SUPPLIER}"}
    assert "平台已介入" in told[f"member:{BUYER}"] and "¥30.00" in told[f"member:{BUYER}"]
    assert "已转交平台处理" in told[f"supplier:{SUPPLIER}"]


def test_a_self_referral_tells_the_keeper_nothing(uow):
    notifications.order_paid(uow, "ev-1", paid_event(self_referral=True), NOW)
    assert owed(uow) == [(f"supplier:{SUPPLIER}", "order_to_ship")]


def _rows(uow) -> list[Notification]:
    return list(uow.session.scalars(select(Notification).order_by(Notification.id)).all())


# --- sending -----------------------------------------------------------------------------------
class FakeDb:
    """What ``delivery`` needs of ``self.db``: units of work (on the fake's one session)."""

    def __init__(self, uow):
        self.uow = uow

    @contextmanager
    def unit_of_work(self):
        yield self.uow
        self.uow.session.flush()


class FakeShop:
    def get_keeper_contact(self, shop_id):
        return {"member_id": KEEPER, "phone": "13900000040"}

    def get_member(self, member_id):
        if int(member_id) != BUYER:
            raise NotFound("no member")
        return {"id": BUYER, "phone": "13900000041"}


class FakeCatalog:
    def get_supplier_contact(self, supplier_id):
        return {"supplier_id": SUPPLIER, "phone": "021-7777", "wechat": "seven", "email": "s@x.cn"}


class FakeOrders:
    def order_parties(self, order_id):
        return ORDER


def send_all(uow, rules=RULES) -> int:
    db = FakeDb(uow)
    adapters = {c: SandboxChannel(db, c) for c in ("sms", "wechat", "email")}
    directory = lambda: Directory(FakeShop(), FakeCatalog(), FakeOrders())  # noqa: E731
    return dispatch(db, rules, directory, adapters, notifications.pending(uow.session))


def sandbox(uow) -> list[tuple[str, str, str]]:
    rows = uow.session.scalars(select(SandboxMessage).order_by(SandboxMessage.id)).all()
    return [(m.channel, m.to, m.template) for m in rows]


def test_owed_notifications_are_sent_once_through_the_chosen_channels(uow):
    notifications.order_paid(uow, "ev-1", paid_event(), NOW)
    supplier_person = "supplier:7"
    notifications.set_preferences(
        uow, supplier_person, PreferencesIn(channels=["sms", "email"]), NOW
    )
    assert send_all(uow) == 2
    assert send_all(uow) == 0  # nothing pending: nothing twice
    assert sandbox(uow) == [
        ("sms", "13900000040", "new_order"),
        ("sms", "021-7777", "order_to_ship"),
        ("email", "s@x.cn", "order_to_ship"),
    ]
    keeper = queries.my_notifications(uow.session, f"member:{KEEPER}", 10)["items"]
    assert [(n["kind"], n["status"]) for n in keeper] == [("new_order", "sent")]


def test_muted_kinds_and_the_hourly_limit_stop_sending(uow):
    notifications.set_preferences(
        uow, f"member:{BUYER}", PreferencesIn(muted=["order_shipped"]), NOW
    )
    shipped = OrderStateChanged(
        order_id=1, supplier_id=SUPPLIER, shop_id=None, status="shipped", at="x", buyer_id=BUYER
    )
    notifications.order_shipped(uow, "ev-1", shipped, NOW)
    send_all(uow)
    assert sandbox(uow) == []
    limited = MessagesRules(notify_max_per_hour=1)
    for i in range(3):
        notifications.payout_paid(
            uow, f"p-{i}", PayoutPaid(payout_id=i, shop_id=SHOP, amount_fen=100, run_id=i), NOW
        )
    send_all(uow, limited)
    statuses = [n.status for n in _rows(uow)]
    assert statuses == ["muted", "sent", "rate_limited", "rate_limited"]
    assert len(sandbox(uow)) == 1


def test_an_unknown_recipient_is_unreachable_not_an_error(uow):
    notifications.owe(uow, "ev-x", "member:5", "order_shipped", "hi", NOW)
    send_all(uow)
    assert [n.status for n in _rows(uow)] == ["unreachable"]
    assert uow.session.scalar(select(func.count()).select_from(Thread)) == 0


class CountingShop(FakeShop):
    def __init__(self, down: bool = False):
        self.asked, self.down = 0, down

    def get_keeper_contact(self, shop_id):
        self.asked += 1
        if self.down:
            raise ServiceUnavailable("shop is down")
        return super().get_keeper_contact(shop_id)


def paid_to_shop(uow, n: int) -> None:
    for i in range(n):
        notifications.order_paid(uow, f"ev-{i}", paid_event(), NOW)


def test_one_batch_asks_the_directory_once_per_recipient_while_its_answer_is_kept(uow):
    db, shop, kept = FakeDb(uow), CountingShop(), LRU(ttl=60)
    adapters = {c: SandboxChannel(db, c) for c in ("sms", "wechat", "email")}
    directory = lambda: Directory(shop, FakeCatalog(), FakeOrders(), kept)  # noqa: E731
    paid_to_shop(uow, 3)  # 3 orders through one shop: 3 to the keeper, 3 to the supplier
    assert dispatch(db, RULES, directory, adapters) == 6
    assert shop.asked == 1
    notifications.order_paid(uow, "ev-later", paid_event(), NOW)
    assert dispatch(db, RULES, directory, adapters) == 2
    assert shop.asked == 1  # still within contact_cache_seconds
    assert {n.status for n in _rows(uow)} == {"sent"}


def test_a_recipient_the_directory_cannot_answer_for_waits_for_the_next_batch(uow):
    db, shop = FakeDb(uow), CountingShop(down=True)
    adapters = {c: SandboxChannel(db, c) for c in ("sms", "wechat", "email")}
    paid_to_shop(uow, 1)
    sent = dispatch(db, RULES, lambda: Directory(shop, FakeCatalog(), FakeOrders()), adapters)
    assert sent == 1  # the supplier's went out
    assert sorted((n.kind, n.status) for n in _rows(uow)) == [
        ("new_order", "pending"),
        ("order_to_ship", "sent"),
    ]
    shop.down = False
    assert dispatch(db, RULES, lambda: Directory(shop, FakeCatalog(), FakeOrders()), adapters) == 1
    assert sorted((n.kind, n.status) for n in _rows(uow)) == [
        ("new_order", "sent"),
        ("order_to_ship", "sent"),
    ]
    assert sorted(t for _, _, t in sandbox(uow)) == ["new_order", "order_to_ship"]


class RefusingChannel:
    def send(self, message):
        raise RuntimeError("provider said no")


def test_a_channel_that_refuses_leaves_the_others_and_the_row_says_where_it_went(uow):
    db = FakeDb(uow)
    adapters = {"sms": RefusingChannel(), "email": SandboxChannel(db, "email")}
    notifications.set_preferences(uow, "supplier:7", PreferencesIn(channels=["sms", "email"]), NOW)
    paid_to_shop(uow, 1)
    directory = lambda: Directory(FakeShop(), FakeCatalog(), FakeOrders())  # noqa: E731
    assert dispatch(db, RULES, directory, adapters) == 1
    rows = {n.kind: n for n in _rows(uow)}
    assert (rows["order_to_ship"].status, rows["order_to_ship"].channels) == ("sent", ["email"])
    assert (rows["new_order"].status, rows["new_order"].channels) == ("failed", [])
    assert dispatch(db, RULES, directory, adapters) == 0  # at most once: nothing is retried
