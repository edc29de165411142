"""The ledger in SQL: store facts, post journal entries, run settlements and payout runs.

Every function takes a SQLAlchemy ``Session`` inside the caller's unit of work (the service's
``uow.session``, or a test's own session) and applies the rules of ``payouts.domain``.

Idempotency comes from *facts*: each order's row in ``order_facts`` records what the events
said (paid, refunded total, received, completed) and how much of it the journal already holds
(accrued, reversed_*). Every handler locks that row, merges the new fact and posts only the
difference, under an ``entry_id`` that is unique per movement. So duplicated events post
nothing, reordered events (a refund before its payment) post the right amounts once the facts
are complete, and replaying the whole history rebuilds the same balances.

Settlement and payout runs are set-based: one UPDATE marks the orders (their facts row is the
sub-ledger: which settlement, how much), one INSERT … SELECT … GROUP BY writes one balanced
entry per shop into the journal, one more the per-order ``commission_settled`` outbox rows; a
payout run writes all its ``pending`` payout rows in one INSERT … SELECT before any transfer,
calls the provider once per party, and marks the results in one UPDATE … RETURNING + one
INSERT … SELECT per 500 transfers. Level changes that arrive after the orders they cover
re-price those orders with an adjustment entry.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    String,
    Text,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from payouts import domain
from payouts.domain import Entry, Reversal, Rules
from payouts.models import (
    Base,
    JournalPosting,
    LevelHistory,
    OrderFacts,
    Payout,
    PayoutRun,
    Settlement,
)
from payouts.provider import PayoutProvider, TransferFailed, TransferTimeout
from shared import clock
from shared.logs import current_correlation_id

J = JournalPosting.__table__
F = OrderFacts.__table__
P = Payout.__table__
OUTBOX = Base.metadata.tables["outbox"]

Emit = Callable[[str, dict], object]
CHUNK = 500


def utc(dt: datetime | str | None) -> datetime | None:
    if dt is None:
        return None
    return clock.parse(dt).astimezone(clock.UTC)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _insert_ignore(session: Session, table, values: dict):
    if _dialect(session) == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return session.execute(dialect_insert(table).values(**values).on_conflict_do_nothing())


def _run_lock(session: Session, key: int) -> None:
    """Serialise runs of one kind on PostgreSQL (SQLite serialises writers anyway)."""
    if _dialect(session) == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(key)))


# --- journal ---------------------------------------------------------------------------------
def post(session: Session, e: Entry, at: datetime) -> bool:
    """Append one balanced entry (once: a second post of the same ``entry_id`` is a no-op)."""
    if not e.postings:
        return False
    exists = session.execute(select(J.c.id).where(J.c.entry_id == e.entry_id).limit(1)).first()
    if exists:
        return False
    session.execute(
        insert(J),
        [
            dict(
                entry_id=e.entry_id,
                kind=e.kind,
                account=p.account,
                party_id=p.party_id,
                order_id=e.order_id,
                amount_fen=p.amount_fen,
                posted_at=at,
            )
            for p in e.postings
        ],
    )
    return True


def balances(session: Session, accounts: Iterable[str], party_id: int) -> dict[str, int]:
    rows = session.execute(
        select(J.c.account, func.coalesce(func.sum(J.c.amount_fen), 0))
        .where(J.c.account.in_(list(accounts)), J.c.party_id == party_id)
        .group_by(J.c.account)
    ).all()
    out = {a: 0 for a in accounts}
    out.update({a: int(v) for a, v in rows})
    return out


def check_books(session: Session) -> dict:
    """The books balance: every entry sums to zero, so all postings together sum to zero."""
    total = session.execute(select(func.coalesce(func.sum(J.c.amount_fen), 0))).scalar_one()
    bad = (
        session.execute(
            select(J.c.entry_id)
            .group_by(J.c.entry_id)
            .having(func.sum(J.c.amount_fen) != 0)
            .limit(20)
        )
        .scalars()
        .all()
    )
    by_account = dict(
        session.execute(select(J.c.account, func.sum(J.c.amount_fen)).group_by(J.c.account)).all()
    )
    entries = session.execute(select(func.count(func.distinct(J.c.entry_id)))).scalar_one()
    return {
        "balanced": int(total) == 0 and not bad,
        "total_fen": int(total),
        "unbalanced_entries": list(bad),
        "entries": int(entries),
        "accounts": {a: int(by_account.get(a) or 0) for a in domain.ACCOUNTS},
    }


# --- facts from events -----------------------------------------------------------------------
def _facts(session: Session, order_id: int) -> OrderFacts:
    """The order's facts row, created if new, locked for this transaction."""
    _insert_ignore(
        session,
        F,
        {
            "order_id": order_id,
            "accrued": False,
            "self_referral": False,
            "paid_fen": 0,
            "commission_bps": 0,
            "bonus_bps": 0,
            "commission_fen": 0,
            "fee_fen": 0,
            "supplier_fen": 0,
            "refunded_total_fen": 0,
            "reversed_commission_fen": 0,
            "reversed_fee_fen": 0,
            "reversed_supplier_fen": 0,
            "settled_commission_fen": 0,
            "settled_sales_fen": 0,
        },
    )
    return session.get(OrderFacts, order_id, with_for_update=True, populate_existing=True)


def bonus_at(session: Session, shop_id: int, at: datetime, rules: Rules) -> int:
    """The keeper's level bonus in force at ``at`` (newcomer's until a level change)."""
    bonus = session.execute(
        select(LevelHistory.bonus_bps)
        .where(LevelHistory.shop_id == shop_id, LevelHistory.effective_at <= at)
        .order_by(LevelHistory.effective_at.desc(), LevelHistory.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return rules.bonus_for_level("newcomer") if bonus is None else int(bonus)


def record_level(
    session: Session,
    shop_id: int,
    level: str,
    bonus_bps: int | None,
    month: str,
    effective_at: datetime,
    rules: Rules,
) -> None:
    """level_changed → the shop's bonus from ``effective_at`` on. Orders of the shop already
    accrued with a payment at or after that instant (the level event arrived after them) are
    re-priced with the bonus in force when they were paid: an adjustment entry moves the
    difference between the keeper and the supplier, refund reversals included."""
    bonus = rules.bonus_for_level(level) if bonus_bps is None else int(bonus_bps)
    row = LevelHistory(
        shop_id=shop_id, level=level, bonus_bps=bonus, month=month, effective_at=utc(effective_at)
    )
    session.add(row)
    session.flush()
    affected = (
        session.execute(
            select(F.c.order_id).where(
                F.c.shop_id == shop_id,
                F.c.accrued.is_(True),
                F.c.self_referral.is_(False),
                F.c.paid_at >= row.effective_at,
            )
        )
        .scalars()
        .all()
    )
    for order_id in affected:
        f = _facts(session, order_id)
        in_force = bonus_at(session, shop_id, clock.as_utc(f.paid_at), rules)
        if in_force != f.bonus_bps:
            _reprice(session, f, in_force, rules, f"rebonus:{order_id}:{row.id}")
    session.flush()


def _reprice(session: Session, f: OrderFacts, bonus: int, rules: Rules, entry_id: str) -> None:
    a = domain.accrue(
        json.loads(f.lines_json or "[]"), f.paid_fen, f.shop_id, f.self_referral, bonus, rules
    )
    target = domain.reversal(f.refunded_total_fen, f.paid_fen, a.commission_fen, a.fee_fen)
    keeper_now = f.commission_fen - f.reversed_commission_fen
    supplier_now = f.supplier_fen - f.reversed_supplier_fen
    dk = (a.commission_fen - target.commission_fen) - keeper_now
    ds = (a.supplier_fen - target.supplier_fen) - supplier_now
    keeper_account = domain.SETTLEABLE if f.settled_at is not None else domain.PENDING
    post(
        session,
        domain.entry(
            entry_id,
            "adjustment",
            [
                domain.Posting(keeper_account, f.shop_id, dk),
                domain.Posting(domain.SUPPLIER_PAYABLE, f.supplier_id, ds),
            ],
            f.order_id,
        ),
        clock.now(),
    )
    f.bonus_bps, f.commission_fen, f.supplier_fen = a.bonus_bps, a.commission_fen, a.supplier_fen
    f.reversed_commission_fen, f.reversed_fee_fen, f.reversed_supplier_fen = (
        target.commission_fen,
        target.fee_fen,
        target.supplier_fen,
    )


def record_paid(session: Session, data: dict, rules: Rules) -> bool:
    """order_paid → accrue commission, fee and supplier payable (once per order)."""
    f = _facts(session, data["order_id"])
    if f.accrued:
        return False
    paid_at = utc(data["paid_at"])
    shop_id = data.get("shop_id")
    bonus = (
        bonus_at(session, shop_id, paid_at, rules)
        if domain.earns_commission(shop_id, data["self_referral"])
        else 0
    )
    a = domain.accrue(data["lines"], data["paid_fen"], shop_id, data["self_referral"], bonus, rules)
    f.shop_id, f.supplier_id, f.buyer_id = shop_id, data["supplier_id"], data.get("buyer_id")
    f.self_referral = bool(data["self_referral"])
    f.paid_fen, f.paid_at = data["paid_fen"], paid_at
    f.lines_json = json.dumps(
        [
            {k: l[k] for k in ("product_id", "quantity", "amount_fen", "commission_bps") if k in l}
            for l in data["lines"]
        ]
    )
    f.commission_bps, f.bonus_bps = a.commission_bps, a.bonus_bps
    f.commission_fen, f.fee_fen, f.supplier_fen = a.commission_fen, a.fee_fen, a.supplier_fen
    f.accrued = True
    post(session, domain.accrual_entry(f.order_id, shop_id, f.supplier_id, f.paid_fen, a), paid_at)
    _reconcile_refund(session, f, paid_at)
    session.flush()
    return True


def record_paid_batch(session: Session, events: list[dict], rules: Rules) -> int:
    """Many order_paid facts at once (a replay, a backlog): orders seen for the first time are
    accrued set-based (one multi-row INSERT of facts, one of journal postings); orders that
    already have facts (a duplicate, a refund that came first) go through ``record_paid``.
    Same result as calling ``record_paid`` for each event. Returns how many accrued."""
    by_id: dict[int, dict] = {}
    for data in events:
        by_id.setdefault(int(data["order_id"]), data)
    known = set(
        session.execute(select(F.c.order_id).where(F.c.order_id.in_(list(by_id)))).scalars()
    )
    fresh = [d for oid, d in by_id.items() if oid not in known]
    shops = {d["shop_id"] for d in fresh if d.get("shop_id") is not None}
    history: dict[int, list[tuple[datetime, int, int]]] = {}
    if shops:
        for shop, at, hid, bonus in session.execute(
            select(
                LevelHistory.shop_id,
                LevelHistory.effective_at,
                LevelHistory.id,
                LevelHistory.bonus_bps,
            ).where(LevelHistory.shop_id.in_(shops))
        ):
            history.setdefault(shop, []).append((clock.as_utc(at), hid, bonus))

    def bonus_of(shop, paid_at):
        past = [h for h in history.get(shop, ()) if h[0] <= paid_at]
        return max(past)[2] if past else rules.bonus_for_level("newcomer")

    rows, accruals = [], {}
    for d in fresh:
        paid_at, shop = utc(d["paid_at"]), d.get("shop_id")
        earns = domain.earns_commission(shop, d["self_referral"])
        a = domain.accrue(
            d["lines"],
            d["paid_fen"],
            shop,
            d["self_referral"],
            bonus_of(shop, paid_at) if earns else 0,
            rules,
        )
        accruals[int(d["order_id"])] = (d, a, paid_at)
        rows.append(
            {
                "order_id": int(d["order_id"]),
                "shop_id": shop,
                "supplier_id": d["supplier_id"],
                "buyer_id": d.get("buyer_id"),
                "self_referral": bool(d["self_referral"]),
                "accrued": True,
                "paid_fen": d["paid_fen"],
                "paid_at": paid_at,
                "lines_json": json.dumps(
                    [
                        {
                            k: l[k]
                            for k in ("product_id", "quantity", "amount_fen", "commission_bps")
                            if k in l
                        }
                        for l in d["lines"]
                    ]
                ),
                "commission_bps": a.commission_bps,
                "bonus_bps": a.bonus_bps,
                "commission_fen": a.commission_fen,
                "fee_fen": a.fee_fen,
                "supplier_fen": a.supplier_fen,
                "refunded_total_fen": 0,
                "reversed_commission_fen": 0,
                "reversed_fee_fen": 0,
                "reversed_supplier_fen": 0,
                "settled_commission_fen": 0,
                "settled_sales_fen": 0,
            }
        )
    inserted: set[int] = set()
    if rows:
        if _dialect(session) == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        inserted = set(
            session.execute(
                dialect_insert(F).on_conflict_do_nothing().returning(F.c.order_id), rows
            ).scalars()
        )
    postings = []
    for oid in inserted:
        d, a, paid_at = accruals[oid]
        e = domain.accrual_entry(oid, d.get("shop_id"), d["supplier_id"], d["paid_fen"], a)
        postings += [
            dict(
                entry_id=e.entry_id,
                kind=e.kind,
                account=p.account,
                party_id=p.party_id,
                order_id=oid,
                amount_fen=p.amount_fen,
                posted_at=paid_at,
            )
            for p in e.postings
        ]
    if postings:
        session.execute(insert(J), postings)
    count = len(inserted)
    for oid, d in by_id.items():  # the rest, one by one: duplicates and early refunds
        if oid not in inserted and record_paid(session, d, rules):
            count += 1
    return count


def record_refund(session: Session, data: dict) -> bool:
    """order_refunded → reverse the refunded share of commission, fee and supplier payable."""
    f = _facts(session, data["order_id"])
    if f.supplier_id is None:
        f.supplier_id, f.shop_id = data["supplier_id"], data.get("shop_id")
    f.refunded_total_fen = max(int(f.refunded_total_fen or 0), int(data["refunded_total_fen"]))
    posted = _reconcile_refund(session, f, utc(data.get("at")) or clock.now())
    session.flush()
    return posted


def _reconcile_refund(session: Session, f: OrderFacts, at: datetime) -> bool:
    if not f.accrued:
        return False  # the payment has not arrived yet: the refund waits in the facts
    target = domain.reversal(f.refunded_total_fen, f.paid_fen, f.commission_fen, f.fee_fen)
    already = Reversal(f.reversed_commission_fen, f.reversed_fee_fen, f.reversed_supplier_fen)
    if target == already:
        return False
    e = domain.reversal_entry(
        f.order_id,
        f.shop_id,
        f.supplier_id,
        f.refunded_total_fen,
        target,
        already,
        settled=f.settled_at is not None,
    )
    post(session, e, at)
    f.reversed_commission_fen, f.reversed_fee_fen, f.reversed_supplier_fen = (
        target.commission_fen,
        target.fee_fen,
        target.supplier_fen,
    )
    return True


def record_state(session: Session, data: dict, state: str) -> None:
    """order_received (keeps the first receipt instant) / order_completed."""
    f = _facts(session, data["order_id"])
    if f.supplier_id is None:
        f.supplier_id, f.shop_id = data.get("supplier_id"), data.get("shop_id")
    at = utc(data["at"])
    if state == "received":
        current = clock.as_utc(f.received_at)
        if current is None or at < current:
            f.received_at = at
    elif state == "completed" and f.completed_at is None:
        f.completed_at = at
    session.flush()


# --- settlement ------------------------------------------------------------------------------
def _json_object(session: Session, *args, as_text: bool = True):
    if _dialect(session) == "postgresql":
        obj = func.json_build_object(*args)
        return cast(obj, Text) if as_text else obj
    return func.json_object(*args)


def run_settlement(
    session: Session, as_of: datetime, rules: Rules, *, list_orders: bool = True
) -> dict:
    """Move every order whose after-sales window closed by ``as_of`` from pending to
    settleable: one UPDATE of the orders' facts (the sub-ledger: which order settled in which
    run, for how much), one INSERT … SELECT of one balanced entry per shop into the journal,
    one INSERT … SELECT of a ``commission_settled`` event per order into the outbox."""
    _run_lock(session, 7001)
    as_of = utc(as_of)
    run = Settlement(as_of=as_of, run_at=clock.now(), count=0, total_fen=0)
    session.add(run)
    session.flush()
    sid = run.id
    cutoff = domain.received_cutoff(as_of, rules)
    net_commission = F.c.commission_fen - F.c.reversed_commission_fen
    session.execute(
        update(F)
        .where(
            F.c.accrued.is_(True),
            F.c.settled_at.is_(None),
            or_(F.c.completed_at.is_not(None), F.c.received_at <= cutoff),
        )
        .values(
            settlement_id=sid,
            settled_at=as_of,
            settled_commission_fen=net_commission,
            settled_sales_fen=case(
                (F.c.refunded_total_fen >= F.c.paid_fen, 0),
                else_=F.c.paid_fen - F.c.refunded_total_fen,
            ),
        )
    )
    earning = and_(F.c.settlement_id == sid, F.c.shop_id.is_not(None), F.c.self_referral.is_(False))
    # one entry per shop and run (pending → settleable of its orders' sum); the orders behind
    # it are the facts rows carrying this settlement_id and their settled_commission_fen
    entry_id = (literal(f"settle:{sid}:") + cast(F.c.shop_id, String)).label("entry_id")
    total = func.sum(F.c.settled_commission_fen)

    def leg(account: str, sign: int):
        return (
            select(
                entry_id,
                literal("settlement"),
                literal(account),
                F.c.shop_id,
                cast(null(), BigInteger),
                total * sign,
                literal(as_of, J.c.posted_at.type),
            )
            .where(earning)
            .group_by(F.c.shop_id)
            .having(total != 0)
        )

    session.execute(
        insert(J).from_select(
            ["entry_id", "kind", "account", "party_id", "order_id", "amount_fen", "posted_at"],
            union_all(leg(domain.PENDING, -1), leg(domain.SETTLEABLE, 1)),
        )
    )
    iso = clock.iso(as_of)
    payload = _json_object(
        session,
        "id",
        literal("commission_settled:") + cast(F.c.order_id, String),
        "type",
        "commission_settled",
        "version",
        1,
        "source",
        "payouts",
        "occurred_at",
        clock.iso(clock.now()),
        "correlation_id",
        current_correlation_id(),
        "data",
        _json_object(
            session,
            "order_id",
            F.c.order_id,
            "shop_id",
            F.c.shop_id,
            "amount_fen",
            F.c.settled_commission_fen,
            "sales_fen",
            F.c.settled_sales_fen,
            "settled_at",
            iso,
            as_text=False,
        ),
    )
    session.execute(
        insert(OUTBOX).from_select(
            ["event_id", "event_type", "payload", "created_at", "attempts"],
            select(
                literal("commission_settled:") + cast(F.c.order_id, String),
                literal("commission_settled"),
                payload,
                literal(clock.real_now(), OUTBOX.c.created_at.type),
                literal(0),
            ).where(earning),
        )
    )
    count, total = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((earning, F.c.settled_commission_fen), else_=0)), 0),
        ).where(F.c.settlement_id == sid)
    ).one()
    run.count, run.total_fen = int(count), int(total)
    out = {"settlement_id": sid, "as_of": iso, "count": int(count), "total_fen": int(total)}
    if list_orders:
        rows = session.execute(
            select(
                F.c.order_id,
                F.c.shop_id,
                F.c.supplier_id,
                F.c.settled_commission_fen,
                F.c.settled_sales_fen,
            )
            .where(F.c.settlement_id == sid)
            .order_by(F.c.order_id)
        ).all()
        out["settled"] = [
            {
                "order_id": r.order_id,
                "shop_id": r.shop_id,
                "supplier_id": r.supplier_id,
                "amount_fen": int(r.settled_commission_fen),
                "sales_fen": int(r.settled_sales_fen),
            }
            for r in rows
        ]
    session.flush()
    return out


# --- payout runs -----------------------------------------------------------------------------
OPEN = ("pending", "failed")


def _keeper_balances():
    return (
        select(J.c.party_id.label("party_id"), func.sum(J.c.amount_fen).label("balance"))
        .where(J.c.account == domain.SETTLEABLE)
        .group_by(J.c.party_id)
    )


def _supplier_balances():
    """Supplier payable of settled orders (and payouts / clawbacks, which carry no order)."""
    return (
        select(J.c.party_id.label("party_id"), func.sum(J.c.amount_fen).label("balance"))
        .select_from(J.outerjoin(F, F.c.order_id == J.c.order_id))
        .where(
            J.c.account == domain.SUPPLIER_PAYABLE,
            or_(J.c.order_id.is_(None), F.c.settled_at.is_not(None)),
        )
        .group_by(J.c.party_id)
    )


def open_payout_run(session: Session, rules: Rules, *, suppliers: bool = True) -> dict:
    """Transaction 1 of a run: write a ``pending`` payout row for every party whose balance
    (net of clawbacks and of transfers still open) reaches the minimum — in one INSERT …
    SELECT per party kind — and return the run with every open row to transfer (this run's
    and the ones earlier runs left failed or interrupted)."""
    _run_lock(session, 7002)
    now = clock.now()
    run = PayoutRun(started_at=now, total_fen=0)
    session.add(run)
    session.flush()
    kinds = [(domain.KEEPER, _keeper_balances())]
    if suppliers:
        kinds.append((domain.SUPPLIER, _supplier_balances()))
    for kind, balances_q in kinds:
        b = balances_q.subquery()
        inflight = (
            select(P.c.party_id, func.sum(P.c.amount_fen).label("open_fen"))
            .where(P.c.party_kind == kind, P.c.status.in_(OPEN))
            .group_by(P.c.party_id)
            .subquery()
        )
        amount = b.c.balance - func.coalesce(inflight.c.open_fen, 0)
        session.execute(
            insert(P).from_select(
                [
                    "run_id",
                    "party_kind",
                    "party_id",
                    "amount_fen",
                    "status",
                    "attempts",
                    "created_at",
                ],
                select(
                    literal(run.id),
                    literal(kind),
                    b.c.party_id,
                    amount,
                    literal("pending"),
                    literal(0),
                    literal(now, P.c.created_at.type),
                )
                .select_from(b.outerjoin(inflight, inflight.c.party_id == b.c.party_id))
                .where(b.c.party_id != domain.PLATFORM_PARTY, amount >= rules.min_payout_fen),
            )
        )
    rows = session.execute(
        select(P.c.id, P.c.party_kind, P.c.party_id, P.c.amount_fen, P.c.run_id)
        .where(P.c.status.in_(OPEN))
        .order_by(P.c.id)
    ).all()
    session.flush()
    return {"run_id": run.id, "payouts": [dict(r._mapping) for r in rows]}


def transfer_all(
    provider: PayoutProvider, payouts: list[dict], attempts: int, concurrency: int = 8
) -> list[dict]:
    """The provider calls, outside any transaction: each payout row's idempotency key, retried
    up to ``attempts`` times in this run, ``concurrency`` parties at a time. Anything else the
    provider raises aborts the run (its rows stay ``pending``; the next run repeats the keys)."""

    def one(p: dict) -> dict:
        key = domain.idempotency_key(p["id"])
        outcome = {**p, "status": "failed", "reference": None, "error": None, "tries": 0}
        for _ in range(max(1, attempts)):
            outcome["tries"] += 1
            try:
                res = provider.transfer(key, p["party_kind"], p["party_id"], p["amount_fen"])
            except (TransferFailed, TransferTimeout) as exc:
                outcome["error"] = f"{type(exc).__name__}: {exc}"
                continue
            outcome.update(status="paid", reference=res.reference, error=None)
            break
        return outcome

    if concurrency <= 1 or len(payouts) <= 1:
        return [one(p) for p in payouts]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, payouts))


def finish_payout_run(
    session: Session, run_id: int, results: list[dict], emit: Emit | None
) -> dict:
    """Transaction 2: mark the transferred rows paid and post their journal entries, set-based
    (an UPDATE … RETURNING and an INSERT … SELECT per chunk); failed rows stay open."""
    now = clock.now()
    paid_ids = [r["id"] for r in results if r["status"] == "paid"]
    newly_paid: set[int] = set()
    for i in range(0, len(paid_ids), CHUNK):
        chunk = paid_ids[i : i + CHUNK]
        ids = (
            session.execute(
                update(P)
                .where(P.c.id.in_(chunk), P.c.status != "paid")
                .values(
                    status="paid",
                    paid_run_id=run_id,
                    paid_at=now,
                    attempts=P.c.attempts + 1,
                    last_error=None,
                )
                .returning(P.c.id)
            )
            .scalars()
            .all()
        )
        if not ids:
            continue
        newly_paid.update(ids)
        keeper = P.c.party_kind == domain.KEEPER
        entry_id = literal("payout:") + cast(P.c.id, String)

        def leg(from_account: bool):
            account = (
                case((keeper, domain.SETTLEABLE), else_=domain.SUPPLIER_PAYABLE)
                if from_account
                else case((keeper, domain.KEEPER_PAID), else_=domain.SUPPLIER_PAID)
            )
            sign = -1 if from_account else 1
            return select(
                entry_id,
                literal("payout"),
                account,
                P.c.party_id,
                cast(null(), BigInteger),
                P.c.amount_fen * sign,
                literal(now, J.c.posted_at.type),
            ).where(P.c.id.in_(ids))

        session.execute(
            insert(J).from_select(
                ["entry_id", "kind", "account", "party_id", "order_id", "amount_fen", "posted_at"],
                union_all(leg(True), leg(False)),
            )
        )
    for r in results:
        if r["status"] != "paid":
            session.execute(
                update(P)
                .where(P.c.id == r["id"], P.c.status != "paid")
                .values(
                    status="failed",
                    attempts=P.c.attempts + r["tries"],
                    last_error=(r["error"] or "")[:1000],
                )
            )
    out_rows, total, supplier_total = [], 0, 0
    for r in results:
        status = "paid" if r["id"] in newly_paid or (r["status"] == "paid") else r["status"]
        row = {
            "payout_id": r["id"],
            "amount_fen": int(r["amount_fen"]),
            "status": status,
            "reference": r["reference"],
            "attempts": r["tries"],
        }
        if r["party_kind"] == domain.KEEPER:
            out_rows.append({"shop_id": r["party_id"], **row})
            if r["id"] in newly_paid:
                total += int(r["amount_fen"])
                if emit is not None:
                    emit(
                        "payout_paid",
                        {
                            "payout_id": r["id"],
                            "shop_id": r["party_id"],
                            "amount_fen": int(r["amount_fen"]),
                            "run_id": run_id,
                        },
                    )
        else:
            row = {"supplier_id": r["party_id"], **row}
            r["_row"] = row
            if r["id"] in newly_paid:
                supplier_total += int(r["amount_fen"])
    session.execute(
        update(PayoutRun.__table__)
        .where(PayoutRun.__table__.c.id == run_id)
        .values(finished_at=now, total_fen=total + supplier_total)
    )
    return {
        "run_id": run_id,
        "payouts": out_rows,
        "total_fen": total,
        "supplier_payouts": [r["_row"] for r in results if "_row" in r],
        "supplier_total_fen": supplier_total,
    }


# --- statements ------------------------------------------------------------------------------
KEEPER_ACCOUNTS = (domain.PENDING, domain.SETTLEABLE, domain.KEEPER_PAID)


def earnings(session: Session, shop_id: int, rules: Rules | None = None, limit: int = 500) -> dict:
    bal = balances(session, KEEPER_ACCOUNTS, shop_id)
    rows = session.execute(
        select(F)
        .where(F.c.shop_id == shop_id, F.c.accrued.is_(True))
        .order_by(F.c.paid_at.desc(), F.c.order_id.desc())
        .limit(limit)
    ).all()
    lines = [
        {
            "order_id": r.order_id,
            "paid_fen": int(r.paid_fen),
            "commission_bps": r.commission_bps,
            "bonus_bps": r.bonus_bps,
            "commission_fen": int(r.commission_fen),
            "refunded_fen": int(r.refunded_total_fen),
            "reversed_commission_fen": int(r.reversed_commission_fen),
            "net_commission_fen": int(r.commission_fen - r.reversed_commission_fen),
            "self_referral": bool(r.self_referral),
            "paid_at": clock.iso(r.paid_at),
            "settled_at": clock.iso(r.settled_at),
            "status": domain.line_status(
                int(r.paid_fen), int(r.refunded_total_fen), r.settled_at is not None
            ),
        }
        for r in rows
    ]
    return {
        "shop_id": shop_id,
        "pending_fen": bal[domain.PENDING],
        "settleable_fen": bal[domain.SETTLEABLE],
        "paid_fen": bal[domain.KEEPER_PAID],
        "level_bonus_bps": bonus_at(session, shop_id, clock.now(), rules or Rules()),
        "lines": lines,
    }


def statement_csv(session: Session, shop_id: int, month: str) -> str:
    """A keeper's monthly statement: opening balances, every journal entry of the month that
    touched the keeper's accounts, closing balances (fen, and yuan for reading)."""
    start, end = domain.month_bounds(month)
    acct = J.c.account.in_(KEEPER_ACCOUNTS)
    mine = and_(acct, J.c.party_id == shop_id)

    def totals(before: datetime) -> dict:
        rows = session.execute(
            select(J.c.account, func.sum(J.c.amount_fen))
            .where(mine, J.c.posted_at < before)
            .group_by(J.c.account)
        ).all()
        out = {a: 0 for a in KEEPER_ACCOUNTS}
        out.update({a: int(v) for a, v in rows})
        return out

    entries = session.execute(
        select(J.c.entry_id, J.c.kind, J.c.order_id, J.c.account, J.c.amount_fen, J.c.posted_at)
        .where(mine, J.c.posted_at >= start, J.c.posted_at < end)
        .order_by(J.c.posted_at, J.c.id)
    ).all()
    grouped: dict[str, dict] = {}
    for r in entries:
        g = grouped.setdefault(
            r.entry_id,
            {
                "posted_at": clock.iso(r.posted_at),
                "kind": r.kind,
                "order_id": r.order_id or "",
                **{a: 0 for a in KEEPER_ACCOUNTS},
            },
        )
        g[r.account] += int(r.amount_fen)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "date",
            "entry",
            "kind",
            "order_id",
            "pending_fen",
            "settleable_fen",
            "paid_fen",
            "pending_yuan",
            "settleable_yuan",
            "paid_yuan",
        ]
    )
    from shared.money import yuan

    def row(date, entry_id, kind, order_id, b):
        vals = [b[a] for a in KEEPER_ACCOUNTS]
        w.writerow([date, entry_id, kind, order_id, *vals, *(yuan(v) for v in vals)])

    row(clock.iso(start), "", "opening_balance", "", totals(start))
    for entry_id, g in grouped.items():
        row(g["posted_at"], entry_id, g["kind"], g["order_id"], g)
    row(clock.iso(end), "", "closing_balance", "", totals(end))
    return buf.getvalue()


def settled_sales(session: Session, month: str) -> dict[str, int]:
    """Sales (paid − refunded) of the orders each shop got settled in ``month``: the figure the
    shop service recalculates levels from (self-referred orders do not count)."""
    start, end = domain.month_bounds(month)
    rows = session.execute(
        select(F.c.shop_id, func.sum(F.c.settled_sales_fen))
        .where(
            F.c.shop_id.is_not(None),
            F.c.self_referral.is_(False),
            F.c.settled_at >= start,
            F.c.settled_at < end,
        )
        .group_by(F.c.shop_id)
    ).all()
    return {str(shop): int(total) for shop, total in rows}
