"""Notifications: what each platform event means for each person, written as rows owed, then
sent once through the person's channels (``messages.delivery``).

At most once per (event id, recipient, kind): the event handler claims the event in the inbox
and writes its rows in one transaction, and the rows carry a unique key on the same triple, so
a redelivered event, a replayed one, or a second writer change nothing.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select, text, update

from messages import domain
from messages.domain import MessagesRules, yuan
from messages.models import Notification, Preference, ShopPick
from shared import clock
from shared.contracts.events import (
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
from shared.contracts.messages import PreferencesIn
from shared.db import as_arrays, insert_or_ignore

NOTIFICATIONS = cast(Table, Notification.__table__)


def owed(event_id: str, recipient: str, kind: str, text: str, now: datetime) -> dict:
    """The row of one notification owed (``owe`` writes it, ``owe_all`` writes many)."""
    return dict(
        event_id=event_id,
        recipient=recipient,
        kind=kind,
        text=text,
        status="pending",
        created_at=now,
    )


def owe(uow: Any, event_id: str, recipient: str, kind: str, text: str, now: datetime) -> bool:
    """Record one notification owed; False when this (event, recipient, kind) already was."""
    return owe_row(uow, owed(event_id, recipient, kind, text, now))


def owe_row(uow: Any, row: dict) -> bool:
    """``owe`` of a row built by ``owed``."""
    session = uow.session
    dialect = session.get_bind().dialect.name
    result = session.execute(insert_or_ignore(NOTIFICATIONS, dialect), row)
    return bool(getattr(result, "rowcount", 0) == 1)


# PostgreSQL: many rows owed in ONE statement, the values as arrays (psycopg2 sends an
# executemany INSERT as one statement per row); a row owed already is left as it is.
OWE_ALL = text(
    "INSERT INTO notifications (event_id, recipient, kind, text, status, created_at)"
    " SELECT v.event_id, v.recipient, v.kind, v.text, 'pending', CAST(:now AS TIMESTAMPTZ)"
    " FROM unnest(CAST(:event_id AS VARCHAR[]), CAST(:recipient AS VARCHAR[]),"
    " CAST(:kind AS VARCHAR[]), CAST(:text AS TEXT[])) AS v (event_id, recipient, kind, text)"
    " ON CONFLICT DO NOTHING"
)


def owe_all(uow: Any, rows: list[dict], now: datetime) -> None:
    """Record the notifications ``rows`` (``owed``, all created ``now``) in one statement on
    PostgreSQL; each (event, recipient, kind) owed already stays as it was."""
    if not rows:
        return
    session = uow.session
    if session.get_bind().dialect.name == "postgresql":
        columns = as_arrays(rows, ("event_id", "recipient", "kind", "text"))
        session.execute(OWE_ALL, {**columns, "now": now})
        return
    session.execute(insert_or_ignore(NOTIFICATIONS, "sqlite"), rows)


# --- what each event means ---------------------------------------------------------------------
def order_paid(uow: Any, event_id: str, e: OrderPaid, now: datetime) -> int:
    """Keeper: a new order through your share with the estimated commission (not for a
    self-referral, which earns nothing). Supplier: an order to ship."""
    return sum(owe_row(uow, row) for row in order_paid_rows(event_id, e, now))


def order_paid_rows(event_id: str, e: OrderPaid, now: datetime) -> list[dict]:
    """``order_paid``'s notifications as rows (``owed``), for a batch to write at once."""
    rows = []
    if e.shop_id is not None and not e.self_referral:
        commission = domain.estimated_commission_fen([li.model_dump() for li in e.lines])
        titles = "、".join(li.title for li in e.lines[:2])
        rows.append(
            owed(
                event_id,
                f"shop:{e.shop_id}",
                "new_order",
                f"新订单：有人通过你的分享买了「{titles}」，实付 {yuan(e.paid_fen)}，"
                f"预计佣金 {yuan(commission)}（订单 {e.order_id}）",
                now,
            )
        )
    rows.append(
        owed(
            event_id,
            f"supplier:{e.supplier_id}",
            "order_to_ship",
            f"新订单待发货：订单 {e.order_id}，实付 {yuan(e.paid_fen)}，请尽快发货",
            now,
        )
    )
    return rows


def order_shipped(uow: Any, event_id: str, e: OrderStateChanged, now: datetime) -> int:
    if e.buyer_id is None:
        return 0
    return int(
        owe(
            uow,
            event_id,
            f"member:{e.buyer_id}",
            "order_shipped",
            f"你的订单 {e.order_id} 已发货，可在订单页查看物流",
            now,
        )
    )


def refund_requested(
    uow: Any, rules: MessagesRules, event_id: str, e: RefundRequested, now: datetime
) -> int:
    """Supplier: a refund to decide, with the time left."""
    requested = clock.parse(e.at) if e.at else now
    left = domain.hours_left(domain.refund_decide_by(requested, rules), now)
    return int(
        owe(
            uow,
            event_id,
            f"supplier:{e.supplier_id}",
            "refund_to_decide",
            f"退款申请待处理：订单 {e.order_id} 申请退款 {yuan(e.amount_fen)}，"
            f"请在 {left} 小时内处理",
            now,
        )
    )


def refund_escalated(uow: Any, event_id: str, e: RefundEscalated, now: datetime) -> int:
    """The supplier let the deadline pass: the buyer learns the platform has stepped in (so the
    wait is not silent), the supplier that it is out of their hands."""
    told = 0
    if e.buyer_id is not None:
        told += owe(
            uow,
            event_id,
            f"member:{e.buyer_id}",
            "refund_escalated",
            f"你在订单 {e.order_id} 的退款申请（{yuan(e.amount_fen)}）商家未在时限内处理，"
            "平台已介入，将尽快给你答复",
            now,
        )
    told += owe(
        uow,
        event_id,
        f"supplier:{e.supplier_id}",
        "refund_escalated",
        f"订单 {e.order_id} 的退款申请（{yuan(e.amount_fen)}）超过处理时限，已转交平台处理",
        now,
    )
    return told


def refund_decided(uow: Any, event_id: str, e: RefundDecided, now: datetime) -> int:
    """Buyer: the refund was decided. An approval is told once, by ``order_refunded`` (which
    carries the money); this tells a rejection, keyed by the refund so both never double."""
    if e.decision != "rejected":
        return 0
    buyer = _buyer_of(e)
    return int(
        owe(
            uow,
            f"refund-{e.refund_id}-decided",
            f"member:{buyer}" if buyer is not None else f"order:{e.order_id}",
            "refund_decided",
            f"你在订单 {e.order_id} 的退款申请（{yuan(e.amount_fen)}）未获同意，可在订单页继续沟通",
            now,
        )
    )


def order_refunded(uow: Any, event_id: str, e: OrderRefunded, now: datetime) -> int:
    if e.buyer_id is None:
        return 0
    return int(
        owe(
            uow,
            f"refund-{e.refund_id}-decided",
            f"member:{e.buyer_id}",
            "refund_decided",
            f"你在订单 {e.order_id} 的退款 {yuan(e.amount_fen)} 已同意，款项将原路退回",
            now,
        )
    )


def product_delisted(uow: Any, event_id: str, e: ProductSnapshot, now: datetime) -> int:
    """Keeper: a product of your shop was removed (every shop that carries it)."""
    shops = uow.session.scalars(
        select(ShopPick.shop_id).where(ShopPick.product_id == e.product_id)
    ).all()
    return sum(
        owe(
            uow,
            event_id,
            f"shop:{shop_id}",
            "product_removed",
            f"你小铺里的「{e.title}」已被供货商下架，买家暂时无法购买",
            now,
        )
        for shop_id in shops
    )


def payout_paid(uow: Any, event_id: str, e: PayoutPaid, now: datetime) -> int:
    return int(
        owe(
            uow,
            event_id,
            f"shop:{e.shop_id}",
            "payout_sent",
            f"佣金 {yuan(e.amount_fen)} 已打款，请留意收款账户",
            now,
        )
    )


def _buyer_of(e: RefundDecided) -> int | None:
    buyer = getattr(e, "buyer_id", None)  # an optional field producers may add
    return int(buyer) if buyer is not None else None


# --- the read model of shop picks ---------------------------------------------------------------
def selection_changed(uow: Any, e: SelectionChanged, now: datetime) -> None:
    s = uow.session
    if e.selected:
        if s.get(ShopPick, (e.shop_id, e.product_id)) is None:
            s.add(ShopPick(shop_id=e.shop_id, product_id=e.product_id, selected_at=now))
    else:
        s.execute(
            delete(ShopPick).where(
                ShopPick.shop_id == e.shop_id, ShopPick.product_id == e.product_id
            )
        )


# --- preferences -------------------------------------------------------------------------------
def set_preferences(uow: Any, person: str, body: PreferencesIn, now: datetime) -> None:
    pref = uow.session.get(Preference, person)
    if pref is None:
        pref = Preference(person=person)
        uow.session.add(pref)
    pref.channels = domain.delivery_channels(body.channels)
    pref.muted = sorted(set(body.muted) & set(domain.KINDS))
    pref.email = body.email
    pref.wechat = body.wechat
    pref.updated_at = now


# --- sending: claim a batch, decide, finish ------------------------------------------------------
def pending(session: Any, limit: int = 100) -> list[int]:
    return list(
        session.scalars(
            select(Notification.id)
            .where(Notification.status == "pending")
            .order_by(Notification.id)
            .limit(limit)
        )
    )


def claim(uow: Any, ids: list[int] | None = None, limit: int = 100) -> list[dict]:
    """Take pending rows for sending in one statement (only one sender wins each row): the
    given ones, else the oldest ``limit``. On PostgreSQL rows another sender holds are skipped,
    not waited for."""
    session = uow.session
    if ids is not None:
        if not ids:
            return []
        chosen: Any = list(ids)
    else:
        chosen = (
            select(Notification.id)
            .where(Notification.status == "pending")
            .order_by(Notification.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            chosen = chosen.with_for_update(skip_locked=True)
    rows = session.execute(
        update(Notification)
        .where(Notification.id.in_(chosen), Notification.status == "pending")
        .values(status="sending")
        .returning(Notification.id, Notification.recipient, Notification.kind, Notification.text)
        .execution_options(synchronize_session=False)
    ).all()
    return sorted(
        ({"id": r.id, "recipient": r.recipient, "kind": r.kind, "text": r.text} for r in rows),
        key=lambda n: n["id"],
    )


def decide(
    uow: Any, rules: MessagesRules, taken: list[tuple[dict, str]], now: datetime
) -> list[tuple[dict, str, list[tuple[str, str | None]]]]:
    """Whether (and where) each person gets each taken row — ``(row, person)`` pairs, in
    order: muted kinds and the hourly limit (rows sent in the window plus those this batch
    sends before it) stop it. Two statements for the whole batch."""
    persons = sorted({person for _, person in taken})
    if not persons:
        return []
    prefs = {
        p.person: p
        for p in uow.session.scalars(select(Preference).where(Preference.person.in_(persons)))
    }
    sent = dict(
        uow.session.execute(
            select(Notification.person, func.count())
            .where(
                Notification.person.in_(persons),
                Notification.status == "sent",
                Notification.sent_at >= domain.window_start(now),
            )
            .group_by(Notification.person)
        ).all()
    )
    out: list[tuple[dict, str, list[tuple[str, str | None]]]] = []
    for row, person in taken:
        pref = prefs.get(person)
        if domain.is_muted(row["kind"], pref.muted if pref else None):
            out.append((row, "muted", []))
            continue
        if domain.over_rate_limit(int(sent.get(person) or 0), rules):
            out.append((row, "rate_limited", []))
            continue
        sent[person] = int(sent.get(person) or 0) + 1
        chosen = domain.delivery_channels(pref.channels if pref else None)
        addresses = {"email": pref.email if pref else None, "wechat": pref.wechat if pref else None}
        out.append((row, "send", [(c, addresses.get(c)) for c in chosen]))
    return out


# PostgreSQL: every row's ending in ONE statement, the values as arrays (psycopg2 sends an
# executemany UPDATE as one statement per row). The channels travel as JSON text.
FINISH = text(
    "UPDATE notifications SET status = v.status, person = v.person,"
    " channels = CAST(v.channels AS JSON),"
    " sent_at = CASE WHEN v.status = 'sent' THEN CAST(:now AS TIMESTAMPTZ) END"
    " FROM unnest(CAST(:ids AS INTEGER[]), CAST(:statuses AS TEXT[]),"
    " CAST(:persons AS TEXT[]), CAST(:channels AS TEXT[])) AS v (id, status, person, channels)"
    " WHERE notifications.id = v.id"
)


def finish(uow: Any, done: list[dict], now: datetime) -> None:
    """Record how each row ended, one statement: ``{"id", "status", "person", "channels"}``
    (``sent`` rows get ``sent_at``; ``pending`` gives a row back for the timer to retry)."""
    if not done:
        return
    session = uow.session
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            FINISH,
            {
                "ids": [d["id"] for d in done],
                "statuses": [d["status"] for d in done],
                "persons": [d.get("person") for d in done],
                "channels": [json.dumps(d.get("channels") or []) for d in done],
                "now": now,
            },
        )
        return
    table = NOTIFICATIONS
    session.execute(
        update(table)
        .where(table.c.id == bindparam("nid"))
        .values(
            status=bindparam("new_status"),
            person=bindparam("new_person"),
            channels=bindparam("new_channels"),
            sent_at=bindparam("new_sent_at"),
        ),
        [
            {
                "nid": d["id"],
                "new_status": d["status"],
                "new_person": d.get("person"),
                "new_channels": d.get("channels") or [],
                "new_sent_at": now if d["status"] == "sent" else None,
            }
            for d in done
        ],
    )
