"""``order_paid``: accrue the order (``accrual``) and screen it (``fraud``), in the fewest
statements the common case allows (issue 19: one ``order_paid`` per paid order).

An order's first event — nearly every one — takes four statements after the inbox claim:

1. one read: the keeper's level bonus at the payment (``journal.bonus_change_at``), the shop's
   suspension (``fraud.suspended_now``), the buyer's other paid orders in the velocity window
   (``fraud.others_in_window``) and the keeper's fingerprints the buyer shares
   (``fraud.keeper_shares``) — skipped when the order earns no commission;
2. the order's facts row with its accrual, ``INSERT … ON CONFLICT DO NOTHING RETURNING``;
3. the accrual's postings (one multi-row INSERT: the facts row is new, so is the entry);
4. the buyer's fingerprints (one multi-row INSERT: a new order has none recorded yet) — on
   PostgreSQL in the same statement as step 2 (``facts_then_fingerprints``: the facts INSERT
   as a CTE, the fingerprints only for the row it created), so three statements there;

then one hold per reason, only when a rule matched (``fraud.hold_reasons``, ``holds.place``).

In a batch (the service's ``on_order_paid``) step 3 waits for the end of the batch
(``Postings``): the accruals of all the batch's new orders go in ONE multi-row INSERT, so an
order costs three statements (two on PostgreSQL) and the batch one more. Nothing the next
order's screening reads is in the journal (step 1 reads level history, standing and
fingerprints; the fingerprints are still written per order); whatever might read it — the
general path, a hold — comes after the entries waiting so far are posted.

When the facts row already exists (a refund or a settle signal arrived first, a replay) the
INSERT writes nothing and the order takes the general path in the same transaction:
``accrual.order_paid`` then ``fraud.order_paid``. Both paths write the same rows (the unit
tests run the fraud rules through both).
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import ARRAY, Connection, bindparam, func, insert, literal, select, true

from payouts import domain
from payouts.domain import PayoutRules
from payouts.handlers import accrual, fraud
from payouts.handlers.journal import (
    FRESH_FACTS,
    F,
    bonus_change_at,
    insert_fresh_facts,
    post_many,
    utc,
)
from payouts.models import FraudFingerprint
from shared.contracts.events import OrderPaid
from shared.db import UnitOfWork, insert_ignore
from shared.pg import PREPARED

FP = fraud.FP


class Postings:
    """Accrual entries of new orders waiting to be posted together (``flush``: one INSERT)."""

    def __init__(self, uow: UnitOfWork):
        self.uow = uow
        self.waiting: list[tuple[domain.Entry, Any]] = []

    def add(self, entry: domain.Entry, at: Any) -> None:
        self.waiting.append((entry, at))

    def flush(self) -> None:
        if self.waiting:
            post_many(self.uow.session.connection(), self.waiting)
            self.waiting = []


def order_paid(
    uow: UnitOfWork, rules: PayoutRules, event: OrderPaid, postings: Postings | None = None
) -> list[int]:
    """Accrue and screen a paid order; the ids of the holds opened. ``postings``: the batch's
    entries waiting to be posted (the caller flushes them at its end); None: posted now."""
    conn = uow.session.connection()  # Core on the unit of work's transaction: no ORM layer
    paid_at = utc(event.paid_at)
    fps = fraud.buyer_fingerprints(event)
    earns = event.shop_id is not None and domain.earns_commission(
        event.shop_id, event.self_referral
    )
    seen = _screening_read(conn, rules, event, fps, paid_at) if earns else None
    bonus = domain.bonus_in_force(
        [(paid_at, 0, seen["bonus_bps"])] if seen and seen["bonus_bps"] is not None else [],
        paid_at,
    )
    a = accrual.accrue_event(event, bonus, rules)
    if not _fresh_facts_and_fingerprints(conn, event, accrual.facts_of(event, a, paid_at), fps):
        if postings is not None:
            postings.flush()  # the general path reads the journal
        accrual.order_paid(uow, rules, event)  # the order has facts already: general path
        return fraud.order_paid(uow, rules, event)
    entry = domain.accrual_entry(
        event.order_id, event.shop_id, event.supplier_id, event.paid_fen, a
    )
    if postings is None:
        post_many(conn, [(entry, paid_at)])
    else:
        postings.add(entry, paid_at)
    if seen is None or a.commission_fen <= 0:
        return []  # nothing earned, nothing to hold
    reasons = fraud.hold_reasons(
        rules,
        event,
        bool(seen["suspended"]),
        _union(fps, seen["shared"]),
        seen["shared"],
        int(seen["others"]) + 1,  # this order is in the window too
    )
    if not reasons:
        return []
    if postings is not None:
        postings.flush()  # a hold is placed on a posted accrual
    return fraud.place_holds(uow, event.order_id, reasons)


def _fresh_facts_and_fingerprints(
    conn: Connection, event: OrderPaid, values: dict[str, Any], fps: dict[str, str]
) -> bool:
    """Steps 2 and 4: the order's facts row unless it exists and, when this call created it,
    the buyer's fingerprints on the order; whether it did. On PostgreSQL one statement
    (``facts_then_fingerprints``), elsewhere two."""
    if conn.dialect.name != "postgresql" or not fps:
        if not insert_fresh_facts(conn, values):
            return False
        fraud.record_order_fingerprints(conn, event, fps, values["paid_at"])
        return True
    facts = {**FRESH_FACTS, **values}
    params: dict[str, Any] = {f"f_{k}": v for k, v in facts.items()}
    params.update(
        kinds=list(fps),
        fps=list(fps.values()),
        member_id=event.buyer_id,
        shop_id=event.shop_id,
        seen_at=values["paid_at"],
    )
    return conn.execute(facts_then_fingerprints(tuple(facts)), params).first() is not None


@functools.cache
def facts_then_fingerprints(keys: tuple[str, ...]) -> Any:
    """(PostgreSQL) ONE statement, built once per set of facts columns: the facts row's
    ``INSERT … ON CONFLICT DO NOTHING RETURNING`` as a CTE, and the buyer's fingerprints
    (``kinds`` / ``fps`` arrays) inserted for the row it returned — none when the row existed.
    It returns a row per fingerprint written: none means the facts row was there already."""
    fresh = (
        insert_ignore(F, "postgresql")
        .values({k: bindparam(f"f_{k}", type_=F.c[k].type) for k in keys})
        .returning(F.c.order_id)
        .cte("fresh")
    )
    given = (
        func.unnest(
            bindparam("kinds", type_=ARRAY(FP.c.kind.type)),
            bindparam("fps", type_=ARRAY(FP.c.fingerprint.type)),
        )
        .table_valued("kind", "fingerprint")
        .render_derived(name="given")
    )
    rows = select(
        bindparam("member_id", type_=FP.c.member_id.type),
        given.c.kind,
        given.c.fingerprint,
        literal(fraud.ORDER, FP.c.source.type),
        fresh.c.order_id,
        bindparam("shop_id", type_=FP.c.shop_id.type),
        bindparam("seen_at", type_=FP.c.seen_at.type),
    ).select_from(fresh.join(given, true()))
    columns = ["member_id", "kind", "fingerprint", "source", "order_id", "shop_id", "seen_at"]
    return (
        insert(FP)
        .from_select(columns, rows)
        .add_cte(fresh)
        .returning(FP.c.order_id)
        .execution_options(**PREPARED)  # one per paid order: parsed once per connection
    )


@functools.cache
def screening_statement() -> Any:
    """One SELECT (built once; ``fraud.screening_params`` binds it): the three figures as
    columns of a one-row select, outer-joined to the shared fingerprints, so it answers one
    row when none is shared."""
    shared_fp = FraudFingerprint.__table__.alias("keeper_fp")
    one = select(literal(1).label("one")).subquery("one")
    return (
        select(
            bonus_change_at().label("bonus_bps"),
            fraud.suspended_now().label("suspended"),
            fraud.others_in_window().label("others"),
            shared_fp.c.kind,
            shared_fp.c.fingerprint,
        )
        .select_from(one.outerjoin(shared_fp, fraud.keeper_shares(shared_fp)))
        .execution_options(
            **PREPARED  # one per attributed paid order: parsed once per connection
        )
    )


def _screening_read(
    conn: Connection, rules: PayoutRules, event: OrderPaid, fps: dict[str, str], paid_at: Any
) -> dict[str, Any]:
    params = fraud.screening_params(event, fps, paid_at, rules)
    rows = conn.execute(screening_statement(), params).all()
    shared: dict[str, set[str]] = {}
    for row in rows:
        if row.kind is not None:
            shared.setdefault(row.kind, set()).add(row.fingerprint)
    first = rows[0]
    return {
        "bonus_bps": first.bonus_bps,
        "suspended": first.suspended,
        "others": first.others,
        "shared": shared,
    }


def _union(fps: dict[str, str], shared: dict[str, set[str]]) -> dict[str, set[str]]:
    out = {kind: {fp} for kind, fp in fps.items()}
    for kind, values in shared.items():
        out.setdefault(kind, set()).update(values)
    return out
