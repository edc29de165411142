"""Visits read back: the last share a visitor opened (last-click attribution, for orders) and
a shop's stats (visits and paid orders per day and per share, from the stats read model)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from share import domain
from share.models import PaidOrder, Share, Visit
from share.queries.shares import share
from share.runtime import State
from shared import clock


def last_visit(db: Any, state: State, visitor_id: str, since: datetime) -> dict | None:
    """The most recent share ``visitor_id`` opened at or after ``since`` (the start of the
    caller's attribution window); visits not yet written count too."""
    best: tuple[str, datetime, str] | None = None
    for visit in state.pending_visits():
        at = visit.get("at")
        if visit.get("visitor_id") == visitor_id and at is not None and at >= since:
            if best is None or at >= best[1]:
                best = (visit["share_id"], at, visit["kind"])
    with db.read() as session:
        row = session.execute(
            select(Visit)
            .where(Visit.visitor_id == visitor_id, Visit.at >= since)
            .order_by(Visit.at.desc(), Visit.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if row is not None:
            at = clock.as_utc(row.at)
            assert at is not None
            if best is None or at > best[1]:
                best = (row.share_id, at, row.kind)
    if best is None:
        return None
    found = share(db, state, best[0])
    return {
        "share_id": found["id"],
        "shop_id": found["shop_id"],
        "product_id": found["product_id"],
        "code": found["code"],
        "visited_at": clock.iso(best[1]),
        "kind": best[2],
    }


def shop_stats(
    session: Any, utc_offset_hours: int, shop_id: int, since: str | None, until: str | None
) -> dict:
    """Visits (and apart: scans, opens, pastes), visitors, paid orders and GMV of a shop, per
    stats day and per share."""
    vq = (
        select(Visit.day, Visit.share_id, func.count(), func.count(Visit.visitor_id.distinct()))
        .where(Visit.shop_id == shop_id)
        .group_by(Visit.day, Visit.share_id)
    )
    oq = (
        select(PaidOrder.day, PaidOrder.share_id, func.count(), func.sum(PaidOrder.paid_fen))
        .where(PaidOrder.shop_id == shop_id)
        .group_by(PaidOrder.day, PaidOrder.share_id)
    )
    kq = (
        select(Visit.day, Visit.share_id, Visit.kind, func.count())
        .where(Visit.shop_id == shop_id)
        .group_by(Visit.day, Visit.share_id, Visit.kind)
    )
    if since:
        vq, oq = vq.where(Visit.day >= since), oq.where(PaidOrder.day >= since)
        kq = kq.where(Visit.day >= since)
    if until:
        vq, oq = vq.where(Visit.day <= until), oq.where(PaidOrder.day <= until)
        kq = kq.where(Visit.day <= until)
    visit_rows = [tuple(r) for r in session.execute(vq).all()]
    kind_rows = [tuple(r) for r in session.execute(kq).all()]
    order_rows = [tuple(r) for r in session.execute(oq).all()]
    codes = {
        sid: (code, pid)
        for sid, code, pid in session.execute(
            select(Share.id, Share.code, Share.product_id).where(Share.shop_id == shop_id)
        )
    }
    stats = domain.assemble_stats(shop_id, visit_rows, order_rows, codes, kind_rows)
    stats["day_utc_offset_hours"] = utc_offset_hours
    return stats
