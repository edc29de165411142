"""The conversation rules alone: routing (moved from orders, same table), the thread's life,
who reads a thread, FAQ suggestions, notification arithmetic."""

from datetime import UTC, datetime, timedelta

import pytest

from messages import domain
from messages.domain import MessagesRules, Parties
from shared.errors import Conflict, RuleViolation

RULES = MessagesRules()
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "topic,status,expected",
    [
        ("product", "paid", "keeper"),
        ("product", "created", "keeper"),
        ("product", "shipped", "supplier"),
        ("shipping", "paid", "supplier"),
        ("refund", "paid", "supplier"),
        ("other", "paid", "keeper"),
        ("other", "received", "supplier"),
    ],
)
def test_inquiry_routed_by_topic_and_order_state(topic, status, expected):
    assert domain.route_inquiry(topic, status, has_keeper=True) == expected


def test_inquiry_without_a_shop_goes_to_the_supplier():
    assert domain.route_inquiry("product", "paid", has_keeper=False) == "supplier"
    assert set(domain.handles("paid", False).values()) == {"supplier"}


def test_an_unknown_topic_is_refused():
    with pytest.raises(RuleViolation):
        domain.route_inquiry("gossip", "paid", True)


def test_the_routed_party_answering_makes_it_answered_and_a_follow_up_reopens_it():
    assert domain.after_message("open", "keeper", "keeper") == "answered"
    assert domain.after_message("answered", "buyer", "keeper") == "open"
    assert domain.waits_for_answer("answered", "open")
    assert domain.after_message("forwarded", "keeper", "supplier") == "forwarded"
    assert domain.after_message("forwarded", "supplier", "supplier") == "answered"
    assert domain.after_message("escalated", "platform", "keeper") == "answered"


def test_a_closed_thread_takes_no_more_messages():
    with pytest.raises(Conflict):
        domain.after_message("closed", "buyer", "keeper")


def test_only_the_keeper_forwards_and_only_once():
    domain.check_forward("open", "keeper", "keeper")
    with pytest.raises(Conflict):
        domain.check_forward("open", "buyer", "keeper")
    with pytest.raises(Conflict):
        domain.check_forward("forwarded", "keeper", "supplier")


def test_the_answer_deadline_is_24_hours_and_only_waiting_threads_escalate():
    due = domain.answer_due(NOW, RULES)
    assert due == NOW + timedelta(hours=24)
    assert domain.is_overdue("open", due, due)
    assert domain.is_overdue("forwarded", due, due + timedelta(seconds=1))
    assert not domain.is_overdue("open", due, due - timedelta(seconds=1))
    assert not domain.is_overdue("answered", due, due + timedelta(days=1))


def test_parties_read_a_thread_and_a_supplier_only_once_it_is_theirs():
    p = Parties(buyer_id=41, keeper_member_id=40, supplier_id=7, supplier_sees=False)
    assert domain.party_of(p, "member", "41") == "buyer"
    assert domain.party_of(p, "member", 40) == "keeper"
    assert domain.party_of(p, "admin", "admin") == "platform"
    assert domain.party_of(p, "member", "99") is None
    assert domain.party_of(p, "supplier", "7") is None  # not routed or forwarded to it yet
    forwarded = Parties(41, 40, 7, supplier_sees=True)
    assert domain.party_of(forwarded, "supplier", "7") == "supplier"
    assert domain.party_of(forwarded, "supplier", "8") is None


def test_faq_answers_are_suggested_by_keyword_overlap():
    faq = [
        {"q": "保质期多久？", "a": "18个月"},
        {"q": "是正品吗", "a": "品牌授权，假一赔十"},
        {"q": "How to brew", "a": "95°C, 3 minutes"},
    ]
    found = domain.suggest_answers("这个茶叶的保质期是多久呀", faq, RULES)
    assert found[0]["a"] == "18个月" and found[0]["score"] >= 0.5
    assert domain.suggest_answers("HOW TO BREW it?", faq, RULES)[0]["a"].startswith("95")
    assert domain.suggest_answers("发什么快递", faq, RULES) == []


def test_the_estimated_commission_is_each_line_at_its_rate():
    lines = [
        {"amount_fen": 12_800, "commission_bps": 2_000},
        {"amount_fen": 999, "commission_bps": 150},
    ]
    assert domain.estimated_commission_fen(lines) == 2_560 + 14
    assert domain.yuan(2_574) == "¥25.74"


def test_rate_limit_and_time_left():
    assert not domain.over_rate_limit(RULES.notify_max_per_hour - 1, RULES)
    assert domain.over_rate_limit(RULES.notify_max_per_hour, RULES)
    by = domain.refund_decide_by(NOW, RULES)
    assert domain.hours_left(by, NOW + timedelta(hours=1, minutes=30)) == 47
    assert domain.hours_left(by, by + timedelta(hours=1)) == 0


def test_channels_keep_their_order_and_default_to_sms():
    assert domain.delivery_channels(None) == ["sms"]
    assert domain.delivery_channels(["email", "sms"]) == ["sms", "email"]
    assert domain.delivery_channels([]) == []
