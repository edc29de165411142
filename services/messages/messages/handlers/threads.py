"""Threads: a buyer asks (after an order or before buying), the parties answer, the keeper
forwards to the supplier, overdue threads escalate to the platform, a party closes.

Every handler takes the unit of work and plain data (the order's parties come from orders by
RPC, read by the entrypoint) and never commits. Each change that someone must hear about writes
its notification row in the same transaction (``notifications.owe``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from messages import domain
from messages.domain import MessagesRules
from messages.handlers import notifications
from messages.models import Thread, ThreadMessage
from messages.queries import load_visible, thread_dict
from shared import clock
from shared.contracts.messages import ForwardIn, MessageIn, OrderThreadIn, Viewer
from shared.ids import unused_int_id
from shared.validation import not_found

TOPIC_LABELS = {"product": "商品", "shipping": "物流", "refund": "退款", "other": "其他"}


def open_order_thread(
    uow: Any,
    rules: MessagesRules,
    viewer: Viewer,
    order: dict,
    body: OrderThreadIn,
    now: datetime,
) -> dict:
    """The buyer of a paid order asks; routed by topic and the order's state."""
    if viewer.role != "member" or str(order["buyer_id"]) != str(viewer.id):
        raise not_found("order", order["order_id"])
    items = order.get("items") or []
    item = next((i for i in items if i["product_id"] == body.product_id), None)
    if body.product_id is not None and item is None:
        raise not_found("product", body.product_id)
    item = item or (items[0] if items else {"product_id": 0})
    has_keeper = order.get("keeper_member_id") is not None
    routed = domain.route_inquiry(body.topic, order["status"], has_keeper)
    thread = _new_thread(
        uow,
        rules,
        now,
        kind="order",
        order_id=order["order_id"],
        order_status=order["status"],
        product_id=int(item["product_id"]),
        topic=body.topic,
        buyer_id=int(order["buyer_id"]),
        shop_id=order.get("shop_id"),
        shop_number=order.get("shop_number"),
        share_id=order.get("share_id"),
        keeper_member_id=order.get("keeper_member_id"),
        supplier_id=int(order["supplier_id"]),
        routed_to=routed,
        facts_snapshot={**item, "snapshotted_at": "checkout"},
    )
    return _asked(uow, thread, body.text, now)


def open_pre_sale_thread(
    uow: Any,
    rules: MessagesRules,
    viewer: Viewer,
    shop: dict,
    product: dict,
    text: str,
    share_id: str | None,
    now: datetime,
) -> dict:
    """A member asks before buying, from a share or a shop: the shop's keeper answers."""
    thread = _new_thread(
        uow,
        rules,
        now,
        kind="pre_sale",
        order_id=None,
        order_status=None,
        product_id=int(product["id"]),
        topic="product",
        buyer_id=int(viewer.id),
        shop_id=int(shop["id"]),
        shop_number=shop.get("shop_number"),
        share_id=share_id,
        keeper_member_id=int(shop["member_id"]),
        supplier_id=int(product["supplier_id"]),
        routed_to=domain.route_pre_sale(),
        facts_snapshot={
            "product_id": product["id"],
            "title": product.get("title"),
            "description": product.get("description"),
            "brand": product.get("brand"),
            "category": product.get("category"),
            "price_fen": product.get("price_fen"),
            "snapshotted_at": "question",
        },
    )
    return _asked(uow, thread, text, now)


def _new_thread(uow: Any, rules: MessagesRules, now: datetime, **values: Any) -> Thread:
    thread = Thread(
        id=unused_int_id(uow.session, Thread),
        status=domain.OPEN,
        supplier_sees=domain.supplier_sees(values["routed_to"]),
        answer_due_at=domain.answer_due(now, rules),
        created_at=now,
        updated_at=now,
        **values,
    )
    uow.session.add(thread)
    uow.session.flush()
    return thread


def _asked(uow: Any, thread: Thread, text: str, now: datetime) -> dict:
    message = _add_message(uow, thread, domain.BUYER, str(thread.buyer_id), text, now)
    _tell_routed_party(uow, thread, message, now)
    return thread_dict(thread, domain.BUYER)


def post_message(
    uow: Any, rules: MessagesRules, thread_id: int, viewer: Viewer, body: MessageIn, now: datetime
) -> dict:
    """A party writes; the routed party's answer makes it ``answered``, a buyer's follow-up
    reopens it (the deadline restarts)."""
    thread, party = load_visible(uow.session, thread_id, viewer, lock=True)
    before = thread.status
    after = domain.after_message(before, party, thread.routed_to)
    message = _add_message(uow, thread, party, viewer.id, body.text, now)
    thread.status = after
    thread.updated_at = now
    if after == domain.ANSWERED:
        thread.answer_due_at = None
        if party != domain.BUYER:
            notifications.owe(
                uow,
                f"thread-message-{message.id}",
                f"member:{thread.buyer_id}",
                "question_answered",
                f"你的问题有了回复（{_who(party)}）：{_clip(body.text)}",
                now,
            )
    elif domain.waits_for_answer(before, after):
        thread.answer_due_at = domain.answer_due(now, rules)
        _tell_routed_party(uow, thread, message, now)
    return _answer(thread, party, message)


def forward(
    uow: Any, rules: MessagesRules, thread_id: int, viewer: Viewer, body: ForwardIn, now: datetime
) -> dict:
    """The keeper hands the thread to the supplier in one step; the keeper keeps reading it."""
    thread, party = load_visible(uow.session, thread_id, viewer, lock=True)
    domain.check_forward(thread.status, party, thread.routed_to)
    note = body.note or "掌柜已将问题转给供货商处理"
    message = _add_message(uow, thread, party, viewer.id, note, now, kind="forward")
    thread.routed_to = domain.SUPPLIER
    thread.supplier_sees = True
    thread.status = domain.FORWARDED
    thread.forwarded_at = now
    thread.updated_at = now
    thread.answer_due_at = domain.answer_due(now, rules)
    _tell_routed_party(uow, thread, message, now)
    return thread_dict(thread, party)


def close(uow: Any, thread_id: int, viewer: Viewer, now: datetime) -> dict:
    thread, party = load_visible(uow.session, thread_id, viewer, lock=True)
    domain.check_close(thread.status)
    thread.status = domain.CLOSED
    thread.closed_at = now
    thread.updated_at = now
    thread.answer_due_at = None
    return thread_dict(thread, party)


def overdue(session: Any, now: datetime, limit: int = 200) -> list[int]:
    """Threads waiting for an answer past their deadline (the SQL takes the statuses from
    ``domain.AWAITING_ANSWER``; ``escalate`` re-checks each with ``domain.is_overdue``)."""
    return list(
        session.scalars(
            select(Thread.id)
            .where(Thread.status.in_(domain.AWAITING_ANSWER), Thread.answer_due_at <= now)
            .order_by(Thread.answer_due_at)
            .limit(limit)
        )
    )


def escalate(uow: Any, thread_id: int, now: datetime) -> bool:
    """An unanswered thread past its deadline goes to the platform's queue."""
    thread = uow.session.get(Thread, thread_id, with_for_update=True)
    if thread is None or not domain.is_overdue(thread.status, _utc(thread.answer_due_at), now):
        return False
    thread.status = domain.ESCALATED
    thread.escalated_at = now
    thread.updated_at = now
    _add_message(
        uow,
        thread,
        domain.PLATFORM,
        None,
        "未在答复时限内回复，平台已介入处理",
        now,
        kind="escalated",
    )
    return True


# --- helpers ---------------------------------------------------------------------------------
def _add_message(
    uow: Any,
    thread: Thread,
    party: str,
    author: str | int | None,
    text: str,
    now: datetime,
    kind: str = "message",
) -> ThreadMessage:
    message = ThreadMessage(
        thread_id=thread.id,
        from_role=party,
        author_id=None if author is None else str(author),
        text=text,
        kind=kind,
        created_at=now,
    )
    thread.messages.append(message)
    uow.session.flush()
    return message


def _tell_routed_party(uow: Any, thread: Thread, message: ThreadMessage, now: datetime) -> None:
    """A question to answer: to the keeper of the shop or to the supplier."""
    if thread.routed_to == domain.KEEPER and thread.shop_id is not None:
        recipient = f"shop:{thread.shop_id}"
    else:
        recipient = f"supplier:{thread.supplier_id}"
    label = TOPIC_LABELS.get(thread.topic, thread.topic)
    where = f"订单 {thread.order_id}" if thread.order_id else "售前咨询"
    forwarded = "（掌柜转来）" if message.kind == "forward" else ""
    notifications.owe(
        uow,
        f"thread-message-{message.id}",
        recipient,
        "question_to_answer",
        f"有买家问题待回复{forwarded}（{where}·{label}）：{_clip(_question(thread))}",
        now,
    )


def _question(thread: Thread) -> str:
    asked = [m.text for m in thread.messages if m.from_role == domain.BUYER]
    return asked[-1] if asked else ""


def _who(party: str) -> str:
    return {"keeper": "掌柜", "supplier": "供货商", "platform": "平台"}.get(party, party)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _answer(thread: Thread, party: str, message: ThreadMessage) -> dict:
    out = thread_dict(thread, party)
    out["message"] = {
        "id": message.id,
        "from_role": message.from_role,
        "text": message.text,
        "created_at": out["messages"][-1]["created_at"] if out["messages"] else None,
    }
    return out


def _utc(dt: datetime | None) -> datetime | None:
    return clock.as_utc(dt)
