"""Visits: buffered in memory off the request path, admitted by the flood limits
(``domain.VisitLimits``) and written in batches with one ``share_visits_recorded`` event per
``EVENT_CHUNK`` visits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import insert

from share import domain
from share.models import Visit
from share.runtime import State
from shared import clock
from shared.contracts.events import ShareVisit, ShareVisitsRecorded

EVENT_CHUNK = 500


def buffer(state: State, batch: list[dict]) -> dict:
    """Keep visits (``VisitIn`` dicts) for the next flush, stamped with when they happened."""
    now = clock.now()
    for visit in batch:
        visit["at"] = now - timedelta(milliseconds=visit.pop("age_ms", 0) or 0)
    state.buffer_visits(batch)
    return {"buffered": len(batch)}


def admit(state: State, batch: list[dict]) -> tuple[list[dict], int]:
    """(visits to count, how many were throttled). A visit admitted by an earlier flush whose
    write failed is counted without being limited again."""
    now = clock.now()
    for visit in batch:
        if not isinstance(visit.get("at"), type(now)):
            visit["at"] = now
    fresh = [v for v in batch if not v.get("admitted")]
    again = [v for v in batch if v.get("admitted")]
    counted, throttled = domain.admit_visits(
        fresh, state.limits, epoch=lambda v: v["at"].timestamp()
    )
    for visit in counted:
        visit["admitted"] = True
    return again + counted, throttled


def record(uow: Any, utc_offset_hours: int, visits: list[dict]) -> int:
    """Write counted visits and announce them; how many were written."""
    rows = [
        {
            "share_id": v["share_id"],
            "shop_id": v["shop_id"],
            "product_id": v["product_id"],
            "visitor_id": v.get("visitor_id"),
            "kind": v["kind"],
            "at": v["at"],
            "day": domain.stats_day(v["at"], utc_offset_hours),
        }
        for v in visits
    ]
    if not rows:
        return 0
    uow.session.execute(insert(Visit), rows)
    for start in range(0, len(rows), EVENT_CHUNK):
        chunk = rows[start : start + EVENT_CHUNK]
        uow.emit(
            "share_visits_recorded",
            ShareVisitsRecorded(
                visits=[
                    ShareVisit(
                        share_id=r["share_id"],
                        shop_id=r["shop_id"],
                        product_id=r["product_id"],
                        visitor_id=r["visitor_id"],
                        kind=r["kind"],
                        at=clock.iso(r["at"]) or "",
                    )
                    for r in chunk
                ]
            ),
        )
    return len(rows)
