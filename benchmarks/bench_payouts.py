"""Payouts benchmark: accrue 100,000 paid orders, then one settlement run and one payout run over
them on PostgreSQL, against a bare ``INSERT … SELECT`` over the same rows measured in the same run.

Figures (lower is better for seconds; ratio = value / floor):

* ``accrual, in-process batches`` — ``handlers.accrual.orders_paid`` fed the 100k order_paid
  payloads in batches of 1,000 (one transaction each) — events/s. This is NOT the broker path: the
  service's event handler accrues one event per transaction; that path is measured separately
  on a sample (``accrual, one transaction per event``: ``accrual.order_paid`` plus the inbox
  claim, in-process) and end to end (``accrual through RabbitMQ``: events published to the
  running platform's payouts service, timed until its journal holds them).
* ``settlement run over 100k orders`` — ``handlers.settlement.run``: one UPDATE of the orders'
  facts (the sub-ledger), one multi-row INSERT of one balanced entry per shop into the
  journal, one INSERT … SELECT of 100k ``commission_settled`` outbox rows — seconds.
* ``payout run (1,000 keepers + 50 suppliers)`` — pending rows in one multi-row INSERT, one
  sandbox-provider transfer per party (that part is inherently per party), then one UPDATE …
  RETURNING per 500 transfers, one multi-row INSERT of the entries and a ``payout_paid`` outbox
  row per keeper — seconds.
* ``settlement + payout`` — the two together; the goal is ≤ 5× the floor. Also shown without
  the time spent inside the sandbox provider (1,050 committed transactions of its own, standing
  in for a remote payment API), i.e. the ledger work of the run.

Set-up note: the benchmark marks every order received (and its after-sales window, orders'
``after_sales_until``, closed) with one bulk UPDATE and then runs
``VACUUM ANALYZE order_facts`` — the steady state autovacuum keeps a live table in; without it
the settlement's UPDATE would pay for the set-up's 100k dead row versions (~2× slower).

Floor: ``INSERT INTO floor_journal SELECT …`` — one posting row per order (100k rows) into a copy
of the journal table with the same indexes and constraints, from the same ``order_facts`` rows.

The ledger part runs on its own scratch PostgreSQL database (so the platform's timers and outbox
relay do not publish 100k events during the measurement). Run alone:
``python benchmarks/bench_payouts.py [--orders 100000]`` (skips the broker figure), or through
``python benchmarks/run_all.py --only payouts``.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "services" / "payouts"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

ORDERS = 100_000
SHOPS = 1_000
SUPPLIERS = 50
BATCH = 1_000
SAMPLE = 2_000
T0 = datetime(2026, 10, 1, tzinfo=UTC)


def order_paid(order_id: int) -> dict:
    amount = 1_000 + (order_id * 7919) % 49_000
    return {
        "order_id": order_id,
        "buyer_id": 1 + order_id % 5_000,
        "supplier_id": 1 + order_id % SUPPLIERS,
        "shop_id": 1 + order_id % SHOPS,
        "share_id": None,
        "self_referral": order_id % 97 == 0,
        "paid_fen": amount,
        "lines": [
            {
                "product_id": 1 + order_id % 300,
                "title": "商品",
                "quantity": 1,
                "unit_price_fen": amount,
                "amount_fen": amount,
                "commission_bps": 500 + (order_id % 11) * 100,
            }
        ],
        "paid_at": (T0 + timedelta(seconds=order_id % 86_400)).isoformat(),
    }


def _figure(name, value, unit, floor_name, floor_value, ratio, goal=None, **extra):
    out = {
        "name": name,
        "value": round(value, 3),
        "unit": unit,
        "floor_name": floor_name,
        "floor_value": round(floor_value, 3),
        "ratio": round(ratio, 3) if ratio else None,
    }
    if goal:
        out["goal"] = goal
    out.update(extra)
    return out


def ledger_figures(orders: int = ORDERS) -> list[dict]:
    from types import SimpleNamespace

    from sqlalchemy import text
    from sqlalchemy.orm import sessionmaker

    from benchmarks.common import scratch_database
    from payouts import queries
    from payouts.domain import PayoutRules
    from payouts.handlers import accrual, payout_runs, settlement
    from payouts.models import Base
    from payouts.provider import SandboxPayoutProvider
    from shared.contracts.events import OrderPaid
    from shared.db import UnitOfWork, make_engine
    from shared.migrations import upgrade

    rules = PayoutRules()
    handle = SimpleNamespace(service_name="payouts", outbox=Base.metadata.tables["outbox"])

    def uow(session):
        """The service's unit of work on a benchmark session (the caller commits)."""
        return UnitOfWork(handle, session)

    url, drop = scratch_database("payouts_ledger")
    engine = None
    try:
        upgrade("payouts", url)
        engine = make_engine(url)
        Session = sessionmaker(bind=engine, expire_on_commit=False)

        # 1. accrual of `orders` paid orders, in-process batches
        t = time.perf_counter()
        for start in range(1, orders + 1, BATCH):
            with Session.begin() as s:
                accrual.orders_paid(
                    uow(s),
                    rules,
                    [
                        OrderPaid.model_validate(order_paid(i))
                        for i in range(start, min(start + BATCH, orders + 1))
                    ],
                )
        batch_s = time.perf_counter() - t

        # 1b. the handler's shape: inbox claim + order_paid, one transaction per event (sample)
        inbox = Base.metadata.tables["inbox"]
        t = time.perf_counter()
        for i in range(orders + 1, orders + 1 + SAMPLE):
            with Session.begin() as s:
                s.execute(
                    inbox.insert().values(
                        event_id=str(uuid.uuid4()),
                        handler="on_order_paid",
                        event_type="order_paid",
                        processed_at=T0,
                    )
                )
                accrual.order_paid(uow(s), rules, OrderPaid.model_validate(order_paid(i)))
        single_s = time.perf_counter() - t
        total_orders = orders + SAMPLE

        # every order received 20 days before the run: its after-sales window (orders' 15
        # days, sent as after_sales_until) is closed
        with Session.begin() as s:
            s.execute(
                text("UPDATE order_facts SET received_at = :at, after_sales_until = :until"),
                {"at": T0, "until": T0 + timedelta(days=15)},
            )
            s.execute(text("CREATE TABLE floor_journal (LIKE journal INCLUDING ALL)"))
        # steady state: that bulk UPDATE left 100k dead row versions, which autovacuum would
        # reclaim in a live system; without it the settlement UPDATE pays for our set-up
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE order_facts"))
            conn.execute(text("ANALYZE journal"))

        # 2. the floor: a bare INSERT … SELECT of one posting per order
        with Session.begin() as s:
            t = time.perf_counter()
            s.execute(
                text(
                    "INSERT INTO floor_journal (entry_id, kind, account, party_id, order_id, "
                    "amount_fen, posted_at) SELECT 'settle:' || order_id, 'settlement', "
                    "'keeper_settleable', coalesce(shop_id, 0), order_id, commission_fen, "
                    "now() FROM order_facts"
                )
            )
        floor_s = time.perf_counter() - t

        # 3. settlement run (with the time of each statement, for the report)
        from sqlalchemy import event

        statements: list[tuple[str, float]] = []

        def before(conn, cursor, statement, *args):
            conn.info["bench_t"] = time.perf_counter()

        def after(conn, cursor, statement, *args):
            statements.append(
                (
                    " ".join(statement.split()[:3]),
                    time.perf_counter() - conn.info.pop("bench_t", time.perf_counter()),
                )
            )

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        as_of = T0 + timedelta(days=20)
        t = time.perf_counter()
        with Session.begin() as s:
            settled = settlement.run(uow(s), rules, as_of, list_orders=False)
        settle_s = time.perf_counter() - t
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
        breakdown = {name: round(sec, 3) for name, sec in statements if sec > 0.05}

        # 4. payout run
        provider = SandboxPayoutProvider(engine)
        t = time.perf_counter()
        with Session.begin() as s:
            opened = payout_runs.open_run(uow(s), rules)
        t_open = time.perf_counter() - t
        t1 = time.perf_counter()
        results = payout_runs.transfer_all(
            provider, opened["payouts"], rules.payout_attempts_per_run
        )
        t_transfers = time.perf_counter() - t1
        t2 = time.perf_counter()
        with Session.begin() as s:
            run = payout_runs.finish_run(uow(s), opened["run_id"], results)
        t_finish = time.perf_counter() - t2
        payout_s = time.perf_counter() - t
        with Session() as s:
            books = queries.check_books(s)
        assert books["balanced"], books
        assert settled["count"] == total_orders, settled
        paid = [p for p in run["payouts"] if p["status"] == "paid"]
        assert len(paid) == SHOPS, len(paid)
        with Session.begin() as s:  # a second run pays nothing twice
            again = payout_runs.open_run(uow(s), rules)
        assert again["payouts"] == [], again

        run_s = settle_s + payout_s
        floor_name = f"bare INSERT … SELECT of {total_orders:,} journal rows"
        goal = "≤ 5× the floor"
        return [
            _figure(
                f"accrual, in-process batches of {BATCH:,} ({orders:,} order_paid)",
                orders / batch_s,
                "events/s",
                f"{floor_name} (rows/s)",
                total_orders / floor_s,
                (orders / batch_s) / (total_orders / floor_s),
                seconds=round(batch_s, 2),
            ),
            _figure(
                f"accrual, one transaction per event with inbox claim ({SAMPLE:,} sample)",
                SAMPLE / single_s,
                "events/s",
                f"{floor_name} (rows/s)",
                total_orders / floor_s,
                (SAMPLE / single_s) / (total_orders / floor_s),
            ),
            _figure(
                f"settlement run over {total_orders:,} orders",
                settle_s,
                "s",
                floor_name,
                floor_s,
                settle_s / floor_s,
                goal,
                orders_settled=settled["count"],
                statements_s=breakdown,
            ),
            _figure(
                f"payout run ({SHOPS:,} keepers + {SUPPLIERS} suppliers)",
                payout_s,
                "s",
                floor_name,
                floor_s,
                payout_s / floor_s,
                open_s=round(t_open, 3),
                transfers_s=round(t_transfers, 3),
                finish_s=round(t_finish, 3),
                transfers=len(results),
            ),
            _figure(
                "settlement + payout run", run_s, "s", floor_name, floor_s, run_s / floor_s, goal
            ),
            _figure(
                "settlement + payout run, ledger work only (without the provider calls)",
                run_s - t_transfers,
                "s",
                floor_name,
                floor_s,
                (run_s - t_transfers) / floor_s,
                goal,
            ),
        ]
    finally:
        if engine is not None:
            engine.dispose()
        drop()


def broker_figure(ctx, sample: int = SAMPLE) -> dict:
    """order_paid events published to the running platform; timed until the payouts service's
    journal holds them all (each accrual is one journal entry)."""
    from nameko.standalone.events import event_dispatcher
    from nameko.standalone.rpc import ClusterRpcProxy

    config = {"AMQP_URI": ctx.amqp_uri}
    with ClusterRpcProxy(config, timeout=60) as rpc:
        before = rpc.payouts.check_books()["entries"]
        dispatch = event_dispatcher(config)
        base = 10_000_000 + secrets.randbelow(1_000_000) * 10
        t = time.perf_counter()
        for i in range(sample):
            env = {
                "id": str(uuid.uuid4()),
                "type": "order_paid",
                "version": 1,
                "source": "bench",
                "occurred_at": T0.isoformat(),
                "correlation_id": None,
                "data": order_paid(base + i),
            }
            dispatch("orders", "order_paid", env)
        published = time.perf_counter() - t
        deadline = time.monotonic() + 600
        while rpc.payouts.check_books()["entries"] < before + sample:
            if time.monotonic() > deadline:
                raise RuntimeError("the payouts service did not accrue the sample in 10 min")
            time.sleep(0.2)
        elapsed = time.perf_counter() - t
    return _figure(
        f"accrual through RabbitMQ into the running service ({sample:,} events)",
        sample / elapsed,
        "events/s",
        "publishing the same events (events/s)",
        sample / published,
        (sample / elapsed) / (sample / published),
    )


def run(ctx) -> list[dict]:
    figures = ledger_figures(ORDERS)
    try:
        figures.append(broker_figure(ctx))
    except Exception as exc:  # report it rather than hide the ledger figures
        figures.append(
            {
                "name": "accrual through RabbitMQ into the running service",
                "value": None,
                "unit": "events/s",
                "floor_name": None,
                "floor_value": None,
                "ratio": None,
                "error": str(exc)[:300],
            }
        )
    return figures


if __name__ == "__main__":
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=ORDERS)
    args = parser.parse_args()
    print(json.dumps(ledger_figures(args.orders), indent=2, ensure_ascii=False))
