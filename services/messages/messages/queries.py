"""Reads of the messages service and their serialisers (dict builders), apart from commands.

Who sees a thread: its parties (``domain.party_of``) and the platform; anyone else gets the
same 404 as for a thread that does not exist.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from messages import domain
from messages.domain import MessagesRules, Parties
from messages.models import Notification, Preference, SandboxMessage, Thread
from shared import clock
from shared.contracts.messages import ThreadQuery, Viewer
from shared.errors import ValidationFailed
from shared.validation import not_found


# --- who sees what ---------------------------------------------------------------------------
def parties(thread: Thread) -> Parties:
    return Parties(
        thread.buyer_id, thread.keeper_member_id, thread.supplier_id, thread.supplier_sees
    )


def load_visible(
    session: Session, thread_id: int, viewer: Viewer, lock: bool = False
) -> tuple[Thread, str]:
    """The thread and the viewer's part in it; 404 when missing or not theirs (one answer)."""
    thread = session.get(Thread, thread_id, with_for_update=True if lock else None)
    if thread is None:
        raise not_found("inquiry", thread_id)
    party = domain.party_of(parties(thread), viewer.role, viewer.id)
    if party is None:
        raise not_found("inquiry", thread_id)
    return thread, party


# --- serialisers ----------------------------------------------------------------------------
def message_dict(m: Any) -> dict:
    return {
        "id": m.id,
        "from_role": m.from_role,
        "kind": m.kind,
        "text": m.text,
        "created_at": clock.iso(clock.as_utc(m.created_at)),
    }


def thread_summary(t: Thread) -> dict:
    return {
        "id": t.id,
        "kind": t.kind,
        "status": t.status,
        "topic": t.topic,
        "routed_to": t.routed_to,
        "order_id": t.order_id,
        "product_id": t.product_id,
        "shop_id": t.shop_id,
        "shop_number": t.shop_number,
        "supplier_id": t.supplier_id,
        "title": (t.facts_snapshot or {}).get("title"),
        "answer_due_at": clock.iso(clock.as_utc(t.answer_due_at)),
        "created_at": clock.iso(clock.as_utc(t.created_at)),
        "updated_at": clock.iso(clock.as_utc(t.updated_at)),
        "forwarded_at": clock.iso(clock.as_utc(t.forwarded_at)),
        "escalated_at": clock.iso(clock.as_utc(t.escalated_at)),
        "closed_at": clock.iso(clock.as_utc(t.closed_at)),
    }


def thread_dict(t: Thread, party: str) -> dict:
    out = thread_summary(t)
    out["viewer"] = party
    out["messages"] = [message_dict(m) for m in t.messages]
    return out


def product_facts(snapshot: dict, current: dict | None) -> dict:
    """The product as snapshotted when the thread opened (at checkout for an order) plus the
    supplier's current specs, FAQ and after-sales policy from the catalog."""
    facts = {k: v for k, v in (snapshot or {}).items()}
    if current is None:
        facts.update({"specs": {}, "faq": [], "after_sales_policy": None, "current": None})
        facts["facts_unavailable"] = True
        return facts
    facts.update(
        {
            "specs": current.get("specs") or {},
            "faq": current.get("faq") or [],
            "after_sales_policy": current.get("after_sales_policy"),
            "current": {
                "title": current.get("title"),
                "price_fen": current.get("price_fen"),
                "available": current.get("available"),
                "status": current.get("status"),
            },
        }
    )
    for key in ("title", "description", "brand", "category"):
        facts.setdefault(key, current.get(key))
    return facts


def with_facts(view: dict, snapshot: dict, current: dict | None, rules: MessagesRules) -> dict:
    view["product_facts"] = product_facts(snapshot, current)
    if domain.sees_suggestions(view["viewer"]):
        asked = [m["text"] for m in view["messages"] if m["from_role"] == domain.BUYER]
        view["suggested_answers"] = domain.suggest_answers(
            asked[-1] if asked else "", view["product_facts"]["faq"], rules
        )
    return view


# --- reads ----------------------------------------------------------------------------------
def get_thread(session: Session, thread_id: int, viewer: Viewer) -> tuple[dict, dict]:
    """The thread as the viewer may see it, and the snapshot its facts start from."""
    thread, party = load_visible(session, thread_id, viewer)
    return thread_dict(thread, party), dict(thread.facts_snapshot or {})


def _cursor(raw: str | None) -> tuple[str, int] | None:
    if not raw:
        return None
    at, _, ident = raw.partition("|")
    if not ident.isdigit():
        raise ValidationFailed(
            "the cursor is invalid", details=[{"field": "cursor", "message": "bad cursor"}]
        )
    return at, int(ident)


def list_threads(session: Session, viewer: Viewer, q: ThreadQuery) -> dict:
    """Mine, newest activity first: a member's questions and those their shops answer (routed
    to the keeper or forwarded by them), a supplier's threads routed or forwarded to it,
    everything for the platform."""
    stmt = select(Thread)
    if viewer.role == "member":
        me = int(viewer.id)
        # a keeper's list: the threads routed to the keeper, and those the keeper forwarded
        # (a shipping or refund question goes straight to the supplier; readable by id)
        keeper = and_(
            Thread.keeper_member_id == me,
            or_(Thread.routed_to == domain.KEEPER, Thread.forwarded_at.is_not(None)),
        )
        if q.as_ == "buyer":
            stmt = stmt.where(Thread.buyer_id == me)
        elif q.as_ == "keeper":
            stmt = stmt.where(keeper)
        else:
            stmt = stmt.where(or_(Thread.buyer_id == me, keeper))
    elif viewer.role == "supplier":
        stmt = stmt.where(Thread.supplier_id == int(viewer.id), Thread.supplier_sees.is_(True))
    if q.status:
        stmt = stmt.where(Thread.status == q.status)
    after = _cursor(q.cursor)
    if after is not None:
        at = clock.parse(after[0])
        stmt = stmt.where(
            or_(Thread.updated_at < at, and_(Thread.updated_at == at, Thread.id < after[1]))
        )
    rows = session.scalars(
        stmt.order_by(Thread.updated_at.desc(), Thread.id.desc()).limit(q.limit + 1)
    ).all()
    page = rows[: q.limit]
    items = []
    for t in page:
        party = domain.party_of(parties(t), viewer.role, viewer.id) or domain.PLATFORM
        item = thread_summary(t)
        item["viewer"] = party
        last = t.messages[-1] if t.messages else None
        item["last_message"] = message_dict(last) if last is not None else None
        items.append(item)
    next_cursor = None
    if len(rows) > q.limit and page:
        last_t = page[-1]
        next_cursor = f"{clock.iso(clock.as_utc(last_t.updated_at))}|{last_t.id}"
    return {"items": items, "next_cursor": next_cursor}


def order_threads(session: Session, order_id: int, viewer: Viewer) -> list[dict]:
    """The threads of one order the viewer is a party of (for the contacts card)."""
    rows = session.scalars(
        select(Thread).where(Thread.order_id == order_id).order_by(Thread.created_at)
    ).all()
    out = []
    for t in rows:
        party = domain.party_of(parties(t), viewer.role, viewer.id)
        if party is not None:
            out.append({**thread_summary(t), "viewer": party})
    return out


# --- notifications ---------------------------------------------------------------------------
def preferences(session: Session, person: str) -> dict:
    pref = session.get(Preference, person)
    if pref is None:
        return {
            "channels": list(domain.DEFAULT_CHANNELS),
            "muted": [],
            "email": None,
            "wechat": None,
            "kinds": list(domain.KINDS),
        }
    return {
        "channels": list(pref.channels),
        "muted": list(pref.muted),
        "email": pref.email,
        "wechat": pref.wechat,
        "kinds": list(domain.KINDS),
    }


def notification_dict(n: Notification) -> dict:
    return {
        "id": n.id,
        "event_id": n.event_id,
        "recipient": n.recipient,
        "person": n.person,
        "kind": n.kind,
        "text": n.text,
        "status": n.status,
        "channels": n.channels,
        "created_at": clock.iso(clock.as_utc(n.created_at)),
        "sent_at": clock.iso(clock.as_utc(n.sent_at)),
    }


def my_notifications(session: Session, person: str, limit: int) -> dict:
    rows = session.scalars(
        select(Notification)
        .where(Notification.person == person)
        .order_by(Notification.id.desc())
        .limit(limit)
    ).all()
    return {"items": [notification_dict(n) for n in rows]}


def sandbox_dict(m: SandboxMessage) -> dict:
    return {
        "channel": m.channel,
        "to": m.to,
        "template": m.template,
        "text": m.text,
        "created_at": clock.iso(clock.as_utc(m.created_at)),
        "source": "messages",
    }


def sandbox_messages(session: Session, to: str | None, limit: int) -> dict:
    """Every message the sandbox channel adapters sent, newest first (``to``: one address)."""
    query = select(SandboxMessage).order_by(SandboxMessage.id.desc()).limit(limit)
    if to:
        query = query.where(SandboxMessage.to == to)
    return {"items": [sandbox_dict(m) for m in session.scalars(query).all()]}
