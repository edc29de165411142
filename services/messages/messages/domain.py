"""The conversation and notification rules of PRODUCT.md ("Conversations"), in plain Python.

Who answers the buyer (moved here from orders, same behaviour): a question before buying goes
to the keeper of the shop it came from. After buying it is routed by topic and the order's
state: pre-sales questions go to the keeper (product facts at hand), shipping and refunds to the
supplier. A *product* question after shipping is about the item the buyer holds (defect, usage,
authenticity): the supplier handles it (after-sales). *Other* goes to the keeper before
shipping and to the supplier after. An order without a shop has no keeper: everything goes to
the supplier.

A thread's life::

    open ──routed party answers──▶ answered ──buyer follows up──▶ open
     │  ╲                                                          ▲
     │   ╲──keeper forwards──▶ forwarded ──supplier answers──▶ answered
     │
     └──(open or forwarded past answer_due_at)──▶ escalated ──routed party answers──▶ answered
    any ──a party closes──▶ closed (no more messages)

The party a thread is routed to has ``answer_deadline_hours`` (24 h) to answer each buyer
message; the deadline restarts when the buyer writes again and when the keeper forwards.

Who reads a thread: its buyer, the keeper of its shop, its supplier once it was routed or
forwarded to the supplier, and the platform. Anyone else is told the thread does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.errors import Conflict, RuleViolation, rule
from shared.rules import ConfiguredRules
from shared.text import match_form


@dataclass(frozen=True)
class MessagesRules(ConfiguredRules):
    """``RULES:`` of messages/config.yml (messages owns each of these keys)."""

    answer_deadline_hours: float = 24.0  # XIAOPU_ANSWER_DEADLINE_HOURS (PRODUCT.md default 24 h)
    notify_max_per_hour: int = 30  # XIAOPU_NOTIFY_MAX_PER_HOUR: per person, beyond it: dropped
    refund_decide_hours: int = 48  # XIAOPU_REFUND_DECIDE_HOURS: the time left told to suppliers
    suggestions_max: int = 3  # FAQ entries suggested beside a question
    suggestion_min_score: float = 0.25  # the share of an FAQ question's words found in the ask
    contact_cache_seconds: float = 60.0  # how long a recipient's person and contact are reused


# --- routing ---------------------------------------------------------------------------------

TOPICS = ("product", "shipping", "refund", "other")
BUYER, KEEPER, SUPPLIER, PLATFORM = "buyer", "keeper", "supplier", "platform"
AFTER_SHIPPING = ("shipped", "received", "completed", "refunded")


def route_inquiry(topic: str, status: str, has_keeper: bool) -> str:
    """Who answers the buyer of an order: see the module docstring."""
    if topic not in TOPICS:
        raise RuleViolation(
            "unknown inquiry topic", [rule("topic", f"topic must be one of {', '.join(TOPICS)}")]
        )
    if not has_keeper:
        return SUPPLIER
    if topic in ("shipping", "refund"):
        return SUPPLIER
    if status in AFTER_SHIPPING:
        return SUPPLIER
    return KEEPER


def handles(status: str, has_keeper: bool) -> dict[str, str]:
    """The 'who handles what' table shown with every order's contacts."""
    return {topic: route_inquiry(topic, status, has_keeper) for topic in TOPICS}


def route_pre_sale() -> str:
    """A question before buying goes to the keeper of the shop it came from."""
    return KEEPER


# --- the thread's life -------------------------------------------------------------------------

OPEN, ANSWERED, FORWARDED, ESCALATED, CLOSED = (
    "open",
    "answered",
    "forwarded",
    "escalated",
    "closed",
)
STATUSES = (OPEN, ANSWERED, FORWARDED, ESCALATED, CLOSED)
AWAITING_ANSWER = (OPEN, FORWARDED)


def answer_due(now: datetime, rules: MessagesRules) -> datetime:
    """The routed party answers within ``answer_deadline_hours``."""
    return now + timedelta(hours=rules.answer_deadline_hours)


def is_overdue(status: str, due: datetime | None, now: datetime) -> bool:
    """An open or forwarded thread past its deadline escalates to the platform."""
    return status in AWAITING_ANSWER and due is not None and due <= now


def after_message(status: str, party: str, routed_to: str) -> str:
    """The thread's status after ``party`` wrote in it; Conflict when it is closed."""
    if status == CLOSED:
        raise Conflict("the thread is closed", details={"status": status}, code="thread_closed")
    if party == routed_to or party == PLATFORM:
        return ANSWERED
    if party == BUYER:
        if status == ANSWERED:
            return OPEN  # a follow-up reopens it
        return status  # still waiting (open / forwarded) or with the platform (escalated)
    return status  # the keeper adding a word to a thread forwarded to the supplier


def waits_for_answer(before: str, after: str) -> bool:
    """The deadline restarts when a buyer's follow-up reopens an answered thread."""
    return before == ANSWERED and after == OPEN


def check_forward(status: str, party: str, routed_to: str) -> None:
    """Only the keeper forwards, once, a thread routed to the keeper that is not closed."""
    if party not in (KEEPER, PLATFORM):
        raise Conflict("only the keeper forwards a thread", code="not_the_keeper")
    if status == CLOSED:
        raise Conflict("the thread is closed", details={"status": status}, code="thread_closed")
    if routed_to == SUPPLIER:
        raise Conflict(
            "the thread is already with the supplier",
            details={"routed_to": routed_to},
            code="already_forwarded",
        )


def check_close(status: str) -> None:
    if status == CLOSED:
        raise Conflict("the thread is already closed", code="thread_closed")


# --- who reads a thread --------------------------------------------------------------------------


@dataclass(frozen=True)
class Parties:
    buyer_id: int
    keeper_member_id: int | None
    supplier_id: int
    supplier_sees: bool  # routed or forwarded to the supplier at some point


def party_of(p: Parties, role: str, viewer_id: str | int | None) -> str | None:
    """buyer / keeper / supplier / platform, or None: not a party (answered as 'not found')."""
    if role == "admin":
        return PLATFORM
    vid = str(viewer_id)
    if role == "member":
        if str(p.buyer_id) == vid:
            return BUYER
        if p.keeper_member_id is not None and str(p.keeper_member_id) == vid:
            return KEEPER
    if role == "supplier" and p.supplier_sees and str(p.supplier_id) == vid:
        return SUPPLIER
    return None


def supplier_sees(routed_to: str) -> bool:
    return routed_to == SUPPLIER


def sees_suggestions(party: str) -> bool:
    """FAQ suggestions help whoever answers; the buyer sees the FAQ itself."""
    return party in (KEEPER, SUPPLIER, PLATFORM)


# --- suggested answers from the FAQ ----------------------------------------------------------


def _terms(text: str) -> set[str]:
    """Words of ``text`` to compare: character bigrams of its match form (Chinese has no
    spaces), plus each latin/digit run as a whole."""
    form = "".join(ch for ch in match_form(text) if ch.isalnum())
    grams = {form[i : i + 2] for i in range(len(form) - 1)}
    return grams or ({form} if form else set())


def suggest_answers(question: str, faq: Iterable[dict], rules: MessagesRules) -> list[dict]:
    """The FAQ entries whose question overlaps the asked one most (simple keyword overlap on
    ``match_form``), best first, at most ``suggestions_max``."""
    asked = _terms(question)
    scored = []
    for i, entry in enumerate(faq):
        terms = _terms(str(entry.get("q", "")))
        if not terms or not asked:
            continue
        score = len(asked & terms) / len(terms)
        if score >= rules.suggestion_min_score:
            scored.append((-score, i, {"q": entry.get("q"), "a": entry.get("a")}, score))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [{**e, "score": round(s, 2)} for _, _, e, s in scored[: rules.suggestions_max]]


# --- notifications ---------------------------------------------------------------------------

KINDS = (
    "new_order",  # keeper: an order came through your share, with the estimated commission
    "order_to_ship",  # supplier
    "order_shipped",  # buyer
    "refund_to_decide",  # supplier, with the time left
    "refund_decided",  # buyer
    "refund_escalated",  # buyer and supplier: past its deadline, the platform decides
    "question_to_answer",  # keeper / supplier: a thread routed or forwarded to them
    "question_answered",  # buyer
    "product_removed",  # keeper: a product of the shop was delisted
    "payout_sent",  # keeper
)
CHANNELS = ("sms", "wechat", "email")
DEFAULT_CHANNELS = ("sms",)


def estimated_commission_fen(lines: Iterable[dict]) -> int:
    """What the keeper may earn on a paid order: each line's amount at its snapshotted rate
    (payouts adds the level bonus and decides what is carried; this is the estimate)."""
    return sum(int(li["amount_fen"]) * int(li["commission_bps"]) // 10_000 for li in lines)


def yuan(fen: int) -> str:
    return f"¥{fen // 100}.{fen % 100:02d}"


def refund_decide_by(requested_at: datetime, rules: MessagesRules) -> datetime:
    return requested_at + timedelta(hours=rules.refund_decide_hours)


def hours_left(until: datetime, now: datetime) -> int:
    """Whole hours left (rounded up, never negative)."""
    seconds = (until - now).total_seconds()
    return max(0, int(-(-seconds // 3600)))


def over_rate_limit(sent_in_last_hour: int, rules: MessagesRules) -> bool:
    """A person gets at most ``notify_max_per_hour`` notifications an hour; the rest are
    recorded as ``rate_limited`` and not sent (they stay in the person's list)."""
    return sent_in_last_hour >= rules.notify_max_per_hour


def delivery_channels(channels: Iterable[str] | None) -> list[str]:
    chosen = list(DEFAULT_CHANNELS if channels is None else channels)
    return [c for c in CHANNELS if c in chosen]


def is_muted(kind: str, muted: Iterable[str] | None) -> bool:
    return kind in set(muted or ())


def window_start(now: datetime) -> datetime:
    return now - timedelta(hours=1)
