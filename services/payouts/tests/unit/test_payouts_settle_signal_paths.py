"""The settle signals in Core (``settlement.orders_received`` / ``orders_completed``: one upsert
per batch) write exactly the facts the ORM path wrote (kept below as ``orm_order_received`` /
``orm_order_completed``, the code they replaced), on random histories: receipts and completions
before and after the payment and the refunds, repeated, out of order, with and without the
after-sales window, in other time zones, from another supplier or shop, batched at random — and
the settlement runs that follow settle the same orders for the same amounts."""

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from payouts import domain, queries
from payouts.domain import PayoutRules
from payouts.handlers import accrual, settlement
from payouts.handlers.journal import facts, utc
from payouts.models import Base, JournalPosting, OrderFacts
from shared.contracts.events import OrderPaid, OrderRefunded, OrderStateChanged
from shared.testing import FakeUnitOfWork

RULES = PayoutRules()
T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)


# --- the ORM path the Core statements replaced (services/payouts before issue 19's step) -----
def orm_order_received(uow, event: OrderStateChanged) -> None:
    f = facts(uow.session, event.order_id)
    if f.supplier_id is None:
        f.supplier_id, f.shop_id = event.supplier_id, event.shop_id
    f.received_at = domain.earliest(_aware(f.received_at), utc(event.at))
    if event.after_sales_until:
        until = utc(event.after_sales_until)
        f.after_sales_until = domain.earliest(_aware(f.after_sales_until), until)
    uow.session.flush()


def orm_order_completed(uow, event: OrderStateChanged) -> None:
    f = facts(uow.session, event.order_id)
    if f.supplier_id is None:
        f.supplier_id, f.shop_id = event.supplier_id, event.shop_id
    if f.completed_at is None:
        f.completed_at = utc(event.at)
    uow.session.flush()


def _aware(dt):
    return None if dt is None else utc(dt)


# --- random histories ------------------------------------------------------------------------
ZONES = [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))]


def instant(rnd: random.Random) -> str:
    at = T0 + timedelta(days=rnd.randint(0, 20), seconds=rnd.randint(0, 86399))
    return at.astimezone(rnd.choice(ZONES)).isoformat()


def signal(rnd: random.Random, kind: str, order_id: int) -> OrderStateChanged:
    at = instant(rnd)
    until = None
    if kind == "received" and rnd.random() < 0.8:  # an old message has no window
        until = (clock_of(at) + timedelta(days=rnd.choice([0, 7, 15]))).isoformat()
    return OrderStateChanged(
        order_id=order_id,
        supplier_id=rnd.choice([77, 77, 78]),
        shop_id=rnd.choice([11, 11, 12, None]),
        status=kind,
        at=at,
        after_sales_until=until,
    )


def clock_of(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def paid(rnd: random.Random, order_id: int) -> OrderPaid:
    amount = rnd.choice([990, 10000, 25900])
    return OrderPaid(
        order_id=order_id,
        buyer_id=9,
        supplier_id=77,
        shop_id=rnd.choice([11, None]),
        share_id=None,
        self_referral=rnd.random() < 0.1,
        paid_fen=amount,
        lines=[
            {
                "product_id": 1,
                "title": "茶",
                "quantity": 1,
                "unit_price_fen": amount,
                "amount_fen": amount,
                "commission_bps": 1000,
            }
        ],
        paid_at=instant(rnd),
    )


def refunded(rnd: random.Random, order_id: int, refund_id: int) -> OrderRefunded:
    return OrderRefunded(
        order_id=order_id,
        refund_id=refund_id,
        supplier_id=rnd.choice([77, 78]),
        shop_id=11,
        amount_fen=500,
        paid_fen=10000,
        refunded_total_fen=500 * refund_id,
        at=instant(rnd),
    )


def history(rnd: random.Random) -> list[tuple[str, object]]:
    """A stream of events over a few orders; the settle signals come in runs (a consumer's
    batches hold one event type)."""
    stream: list[tuple[str, object]] = []
    paid_orders: set[int] = set()
    for _ in range(rnd.randint(5, 40)):
        order_id = rnd.randint(1, 6)
        kind = rnd.choices(["paid", "refunded", "received", "completed"], [3, 1, 4, 4])[0]
        if kind == "paid":
            if order_id in paid_orders:
                continue  # order_paid's own path is tested in test_payouts_order_paid_paths
            paid_orders.add(order_id)
            stream.append(("paid", paid(rnd, order_id)))
        elif kind == "refunded":
            stream.append(("refunded", refunded(rnd, order_id, rnd.randint(1, 3))))
        else:
            for _ in range(rnd.choice([1, 1, 2, 5])):  # a run of signals: one batch or more
                stream.append((kind, signal(rnd, kind, rnd.choice([order_id, rnd.randint(1, 6)]))))
    return stream


def play(uow, stream, batched: bool, rnd: random.Random) -> list[dict]:
    """Apply the stream; settlement runs now and then. The ORM path takes one signal at a
    time, the Core path the runs of signals in random batches."""
    runs = []
    pending: list[OrderStateChanged] = []
    pending_kind = None
    core = {"received": settlement.orders_received, "completed": settlement.orders_completed}
    orm = {"received": orm_order_received, "completed": orm_order_completed}

    def flush():
        nonlocal pending, pending_kind
        if pending:
            core[pending_kind](uow, pending)
        pending, pending_kind = [], None

    for n, (kind, event) in enumerate(stream):
        if kind in ("received", "completed"):
            if not batched:
                orm[kind](uow, event)
                continue
            if kind != pending_kind or rnd.random() < 0.3:
                flush()
            pending.append(event)
            pending_kind = kind
            continue
        flush()
        if kind == "paid":
            accrual.order_paid(uow, RULES, event)
        else:
            accrual.order_refunded(uow, RULES, event)
        if n % 7 == 6:
            runs.append(settled(uow, T0 + timedelta(days=n)))
    flush()
    runs.append(settled(uow, T0 + timedelta(days=40)))
    return runs


def settled(uow, as_of: datetime) -> dict:
    out = settlement.run(uow, RULES, as_of)
    return {k: out[k] for k in ("count", "total_fen", "settled")}


def rows(uow) -> dict:
    s = uow.session
    s.flush()

    def plain(model, drop=("id",)):
        cols = [c for c in model.__table__.c if c.name not in drop]
        return sorted(tuple(r) for r in s.execute(select(*cols)).all())

    return {"facts": plain(OrderFacts, drop=()), "journal": plain(JournalPosting)}


@pytest.mark.parametrize("seed", range(60))
def test_the_core_settle_signals_write_what_the_orm_path_wrote(seed):
    stream = history(random.Random(seed))
    orm_uow, core_uow = FakeUnitOfWork(Base.metadata), FakeUnitOfWork(Base.metadata)
    orm_runs = play(orm_uow, stream, batched=False, rnd=random.Random(seed))
    core_runs = play(core_uow, stream, batched=True, rnd=random.Random(seed))
    assert rows(core_uow) == rows(orm_uow)
    assert core_runs == orm_runs
    assert queries.check_books(core_uow.session)["balanced"]


def test_the_random_histories_walk_every_branch():
    """The seeds above meet each case the SET clauses decide (else they prove little)."""
    seen = set()
    for seed in range(60):
        stream = history(random.Random(seed))
        signals = [(k, e) for k, e in stream if isinstance(e, OrderStateChanged)]
        first: dict[tuple[str, int], datetime] = {}
        for kind, e in signals:
            at = utc(e.at)
            if (kind, e.order_id) in first:
                seen.add("repeated")
                if at < first[kind, e.order_id]:
                    seen.add("an earlier one later")
            first.setdefault((kind, e.order_id), at)
            if kind == "received" and not e.after_sales_until:
                seen.add("no window")
            if e.supplier_id == 78:
                seen.add("another supplier")
        if stream and stream[0][0] in ("received", "completed"):
            seen.add("before the payment")
    assert seen == {
        "repeated",
        "an earlier one later",
        "no window",
        "another supplier",
        "before the payment",
    }


def statements_of(uow, fn) -> list[str]:
    sent: list[str] = []

    def count(conn, cursor, statement, params, context, executemany):
        sent.append(statement.split()[0])

    sa_event.listen(uow.engine, "before_cursor_execute", count)
    try:
        fn()
        uow.session.flush()
    finally:
        sa_event.remove(uow.engine, "before_cursor_execute", count)
    return sent


def test_a_batch_of_settle_signals_is_one_statement():
    rnd = random.Random(19)
    uow = FakeUnitOfWork(Base.metadata)
    for order_id in range(1, 51):
        accrual.order_paid(uow, RULES, paid(rnd, order_id))
    uow.session.flush()
    receipts = [signal(rnd, "received", order_id) for order_id in range(1, 51)]
    completions = [signal(rnd, "completed", order_id) for order_id in range(1, 51)]
    assert statements_of(uow, lambda: settlement.orders_received(uow, receipts)) == ["INSERT"]
    assert statements_of(uow, lambda: settlement.orders_completed(uow, completions)) == ["INSERT"]
    # the ORM path took three per signal: create-if-missing, lock and read, update
    earlier = receipts[0].model_copy(update={"at": (T0 - timedelta(days=1)).isoformat()})
    orm = statements_of(uow, lambda: orm_order_received(uow, earlier))
    assert orm == ["INSERT", "SELECT", "UPDATE"]
