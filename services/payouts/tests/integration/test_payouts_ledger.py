"""The ledger on a real database (PostgreSQL by default, SQLite with XIAOPU_TEST_DB=sqlite):
accrual, refunds in any order, settlement, payout runs with failing and interrupted transfers,
and a property test over random histories."""

import itertools
import json
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import sessionmaker

from payouts import domain, queries
from payouts.domain import PayoutRules
from payouts.handlers import accrual, holds, payout_runs, settlement
from payouts.models import Base, JournalPosting, Payout
from payouts.provider import SandboxPayoutProvider
from shared.contracts.events import LevelChanged, OrderPaid, OrderRefunded, OrderStateChanged
from shared.db import UnitOfWork, make_engine
from shared.money import allocate, apply_bps, prorate

RULES = PayoutRules()
T0 = datetime(2026, 10, 1, tzinfo=UTC)
AFTER_SALES = timedelta(days=15)  # orders' window: order_received carries its end
HANDLE = SimpleNamespace(service_name="payouts", outbox=Base.metadata.tables["outbox"])
_ids = itertools.count(1)


def next_id() -> int:
    return next(_ids)


@pytest.fixture
def db(make_database):
    engine = make_engine(make_database("payouts"))
    yield engine, sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


def tx(Session, fn, *args, **kwargs):
    """``fn`` in a real unit of work (shared.db.UnitOfWork) on a session of the test database."""
    with Session.begin() as s:
        return fn(UnitOfWork(HANDLE, s), *args, **kwargs)


def paid_event(order_id, shop_id, supplier_id, lines, self_referral=False, at=T0):
    return OrderPaid.model_validate(
        {
            "order_id": order_id,
            "buyer_id": 1,
            "supplier_id": supplier_id,
            "shop_id": shop_id,
            "share_id": None,
            "self_referral": self_referral,
            "paid_fen": sum(a for a, _ in lines),
            "lines": [
                {
                    "product_id": i,
                    "title": "t",
                    "quantity": 1,
                    "unit_price_fen": a,
                    "amount_fen": a,
                    "commission_bps": b,
                }
                for i, (a, b) in enumerate(lines)
            ],
            "paid_at": at.isoformat(),
        }
    )


def refund_event(order_id, shop_id, supplier_id, paid, total, at=T0, items=None, refund_id=None):
    """order_refunded; ``items`` ({product_id: fen}) names what this refund refunds."""
    return OrderRefunded(
        order_id=order_id,
        refund_id=refund_id if refund_id is not None else total,
        supplier_id=supplier_id,
        shop_id=shop_id,
        amount_fen=sum(items.values()) if items else 0,
        paid_fen=paid,
        refunded_total_fen=total,
        at=at.isoformat(),
        items=None
        if items is None
        else [{"product_id": p, "amount_fen": fen} for p, fen in items.items()],
    )


def state_event(order_id, shop_id, supplier_id, status, at=T0):
    """order_received carries the end of orders' after-sales window, as orders sends it."""
    return OrderStateChanged(
        order_id=order_id,
        supplier_id=supplier_id,
        shop_id=shop_id,
        status=status,
        at=at.isoformat(),
        after_sales_until=(at + AFTER_SALES).isoformat() if status == "received" else None,
    )


def level(shop_id, new_level, bonus_bps, month, at):
    """level_changed of shop (its bonus_bps) and the instant it took effect (occurred_at)."""
    event = LevelChanged(
        shop_id=shop_id, month=month, old_level="newcomer", new_level=new_level, bonus_bps=bonus_bps
    )
    return event, at


SETTLE_SIGNAL = {"received": settlement.order_received, "completed": settlement.order_completed}


def record_state(Session, event, state):
    tx(Session, SETTLE_SIGNAL[state], event)


def keeper(Session, shop_id):
    with Session() as s:
        return queries.balances(s, queries.KEEPER_ACCOUNTS, shop_id)


def books(Session):
    with Session() as s:
        return queries.check_books(s)


def payout_run(engine, Session, provider, suppliers=True):
    opened = tx(Session, payout_runs.open_run, RULES, suppliers=suppliers)
    results = payout_runs.transfer_all(provider, opened["payouts"], RULES.payout_attempts_per_run)
    return tx(Session, payout_runs.finish_run, opened["run_id"], results)


# --- scenarios -------------------------------------------------------------------------------
def test_paid_order_accrues_pending_commission_once_even_when_the_event_repeats(db):
    engine, Session = db
    shop, sup, order = next_id(), next_id(), next_id()
    ev = paid_event(order, shop, sup, [(333, 1000), (1001, 1000)])
    assert tx(Session, accrual.order_paid, RULES, ev) is True
    assert tx(Session, accrual.order_paid, RULES, ev) is False
    assert keeper(Session, shop) == {
        domain.PENDING: 33 + 100,
        domain.SETTLEABLE: 0,
        domain.KEEPER_PAID: 0,
    }
    assert books(Session)["balanced"]


def test_level_bonus_in_force_at_payment_is_added_to_the_rate(db):
    engine, Session = db
    shop, sup = next_id(), next_id()
    tx(
        Session,
        accrual.level_changed,
        RULES,
        *level(shop, "super", 200, "2026-09", T0 - timedelta(days=1)),
    )
    tx(
        Session,
        accrual.level_changed,
        RULES,
        *level(shop, "elite", 100, "2026-10", T0 + timedelta(days=30)),
    )
    o1, o2 = next_id(), next_id()
    tx(Session, accrual.order_paid, RULES, paid_event(o1, shop, sup, [(10000, 1000)]))
    tx(
        Session,
        accrual.order_paid,
        RULES,
        paid_event(o2, shop, sup, [(10000, 1000)], at=T0 + timedelta(days=31)),
    )
    with Session() as s:
        lines = {ln["order_id"]: ln for ln in queries.earnings(s, shop)["lines"]}
    assert (lines[o1]["bonus_bps"], lines[o1]["commission_fen"]) == (200, 1200)
    assert (lines[o2]["bonus_bps"], lines[o2]["commission_fen"]) == (100, 1100)


def test_self_referred_order_earns_nothing_and_supplier_gets_it_all(db):
    engine, Session = db
    shop, sup, order = next_id(), next_id(), next_id()
    tx(Session, accrual.order_paid, RULES, paid_event(order, shop, sup, [(5000, 1000)], True))
    assert keeper(Session, shop)[domain.PENDING] == 0
    with Session() as s:
        assert queries.balances(s, [domain.SUPPLIER_PAYABLE], sup)[domain.SUPPLIER_PAYABLE] == 5000


def test_refund_arriving_before_the_payment_is_applied_when_the_payment_arrives(db):
    engine, Session = db
    shop, sup, order = next_id(), next_id(), next_id()
    tx(Session, accrual.order_refunded, RULES, refund_event(order, shop, sup, 10000, 4000))
    assert keeper(Session, shop)[domain.PENDING] == 0
    tx(Session, accrual.order_paid, RULES, paid_event(order, shop, sup, [(10000, 1000)]))
    assert keeper(Session, shop)[domain.PENDING] == 600
    tx(
        Session, accrual.order_refunded, RULES, refund_event(order, shop, sup, 10000, 2500)
    )  # older, late
    tx(
        Session, accrual.order_refunded, RULES, refund_event(order, shop, sup, 10000, 4000)
    )  # duplicate
    assert keeper(Session, shop)[domain.PENDING] == 600
    tx(Session, accrual.order_refunded, RULES, refund_event(order, shop, sup, 10000, 10000))
    assert keeper(Session, shop)[domain.PENDING] == 0
    assert books(Session)["balanced"]


def test_settlement_moves_closed_windows_to_settleable_once(db):
    engine, Session = db
    shop, sup = next_id(), next_id()
    early, late, done, open_ = next_id(), next_id(), next_id(), next_id()
    for o in (early, late, done, open_):
        tx(Session, accrual.order_paid, RULES, paid_event(o, shop, sup, [(10000, 1000)]))
    record_state(Session, state_event(early, shop, sup, "received", T0), "received")
    record_state(
        Session,
        state_event(late, shop, sup, "received", T0 + timedelta(days=5)),
        "received",
    )
    record_state(
        Session,
        state_event(done, shop, sup, "completed", T0 + timedelta(days=2)),
        "completed",
    )
    out = tx(Session, settlement.run, RULES, T0 + timedelta(days=15))
    assert sorted(o["order_id"] for o in out["settled"]) == sorted([early, done])
    assert out["count"] == 2 and out["total_fen"] == 2000
    again = tx(Session, settlement.run, RULES, T0 + timedelta(days=15))
    assert again["count"] == 0 and again["settled"] == []
    assert keeper(Session, shop) == {
        domain.PENDING: 2000,
        domain.SETTLEABLE: 2000,
        domain.KEEPER_PAID: 0,
    }
    with Session() as s:
        payloads = (
            s.execute(text("SELECT payload FROM outbox WHERE event_type='commission_settled'"))
            .scalars()
            .all()
        )
        events = {e["data"]["order_id"]: e for e in map(json.loads, payloads)}
        assert events[early]["data"]["amount_fen"] == 1000
        assert events[done]["data"]["sales_fen"] == 10000
        assert events[done]["type"] == "commission_settled" and events[done]["id"]
        assert queries.settled_sales(s, "2026-10")[str(shop)] == 20000
    assert books(Session)["balanced"]


def test_refund_after_payout_is_clawed_back_from_the_next_run(db):
    engine, Session = db
    provider = SandboxPayoutProvider(engine)
    shop, sup = next_id(), next_id()
    o1, o2 = next_id(), next_id()
    tx(Session, accrual.order_paid, RULES, paid_event(o1, shop, sup, [(20000, 1000)]))
    record_state(Session, state_event(o1, shop, sup, "completed"), "completed")
    tx(Session, settlement.run, RULES, T0 + timedelta(days=1))
    run = payout_run(engine, Session, provider)
    mine = [p for p in run["payouts"] if p["shop_id"] == shop]
    assert [(p["amount_fen"], p["status"]) for p in mine] == [(2000, "paid")]
    tx(Session, accrual.order_refunded, RULES, refund_event(o1, shop, sup, 20000, 20000))
    assert keeper(Session, shop) == {
        domain.PENDING: 0,
        domain.SETTLEABLE: -2000,
        domain.KEEPER_PAID: 2000,
    }
    with Session() as s:  # never silent: the balance says what is owed back and why
        earned = queries.earnings(s, shop)
    assert earned["negative_balance"] == {
        "owed_fen": 2000,
        "cause": domain.CLAWBACK_CAUSE,
        "orders": [{"order_id": o1, "clawback_fen": 2000}],
        "netted_against": "next earnings",
    }
    (line,) = earned["lines"]
    assert line["clawback_fen"] == 2000 and any(domain.CLAWBACK_CAUSE in n for n in line["notes"])
    tx(Session, accrual.order_paid, RULES, paid_event(o2, shop, sup, [(25000, 1000)]))
    record_state(Session, state_event(o2, shop, sup, "completed"), "completed")
    tx(Session, settlement.run, RULES, T0 + timedelta(days=2))
    run = payout_run(engine, Session, provider)
    assert [p for p in run["payouts"] if p["shop_id"] == shop] == []  # 2500 − 2000 < minimum
    assert keeper(Session, shop)[domain.SETTLEABLE] == 500
    assert books(Session)["balanced"]


def test_overlapping_payout_runs_report_only_what_each_run_did(db):
    engine, Session = db
    provider = SandboxPayoutProvider(engine)
    shop, sup, order = next_id(), next_id(), next_id()
    tx(Session, accrual.order_paid, RULES, paid_event(order, shop, sup, [(20000, 1000)]))
    record_state(Session, state_event(order, shop, sup, "completed"), "completed")
    tx(Session, settlement.run, RULES, T0 + timedelta(days=1))
    first = tx(Session, payout_runs.open_run, RULES)
    second = tx(Session, payout_runs.open_run, RULES)  # overlaps: sees the same open rows
    results_1 = payout_runs.transfer_all(provider, first["payouts"], 1)
    results_2 = payout_runs.transfer_all(provider, second["payouts"], 1)
    done_1 = tx(Session, payout_runs.finish_run, first["run_id"], results_1)
    done_2 = tx(Session, payout_runs.finish_run, second["run_id"], results_2)
    mine = [p for p in done_1["payouts"] if p["shop_id"] == shop]
    assert [(p["amount_fen"], p["status"]) for p in mine] == [(2000, "paid")]
    assert [p for p in done_2["payouts"] if p["shop_id"] == shop] == []  # not "paid" again
    assert [p for p in done_2["supplier_payouts"] if p["supplier_id"] == sup] == []
    assert done_2["total_fen"] == 0 and done_2["supplier_total_fen"] == 0
    assert keeper(Session, shop)[domain.KEEPER_PAID] == 2000
    assert books(Session)["balanced"]


def test_a_hold_placed_after_settlement_keeps_the_amount_out_of_payout_runs(db):
    engine, Session = db
    provider = SandboxPayoutProvider(engine)
    shop, sup, order = next_id(), next_id(), next_id()
    tx(Session, accrual.order_paid, RULES, paid_event(order, shop, sup, [(20000, 1000)]))
    record_state(Session, state_event(order, shop, sup, "completed"), "completed")
    tx(Session, settlement.run, RULES, T0 + timedelta(days=1))
    tx(Session, holds.place, order, "fraud:velocity", T0 + timedelta(days=1))
    run = payout_run(engine, Session, provider)
    assert [p for p in run["payouts"] if p["shop_id"] == shop] == []
    assert [p for p in run["supplier_payouts"] if p["supplier_id"] == sup] == []
    with Session() as s:
        assert queries.supplier_balance(s, sup)["held_fen"] == 18000
        assert queries.earnings(s, shop)["held_fen"] == 2000
    released = tx(
        Session,
        holds.release,
        order,
        "fraud:velocity",
        T0 + timedelta(days=2),
        decision="cleared",
        decided_by="admin",
    )
    assert released == 1
    run = payout_run(engine, Session, provider)
    assert [p["amount_fen"] for p in run["payouts"] if p["shop_id"] == shop] == [2000]
    with Session() as s:
        (h,) = holds.history(s, order)
    assert (h["reason"], h["decision"], h["decided_by"]) == ("fraud:velocity", "cleared", "admin")
    assert h["released_at"] is not None


def test_failed_transfer_is_retried_in_a_later_run_and_paid_once(db):
    engine, Session = db
    shop, sup, order = next_id(), next_id(), next_id()
    tx(Session, accrual.order_paid, RULES, paid_event(order, shop, sup, [(30000, 1000)]))
    record_state(Session, state_event(order, shop, sup, "completed"), "completed")
    tx(Session, settlement.run, RULES, T0 + timedelta(days=1))
    failing = SandboxPayoutProvider(engine, fail=f"keeper:{shop}")
    run1 = payout_run(engine, Session, failing)
    mine = [p for p in run1["payouts"] if p["shop_id"] == shop]
    assert [(p["status"], p["attempts"]) for p in mine] == [("failed", 3)]
    assert keeper(Session, shop)[domain.SETTLEABLE] == 3000
    run2 = payout_run(engine, Session, SandboxPayoutProvider(engine))
    mine = [p for p in run2["payouts"] if p["shop_id"] == shop]
    assert [(p["amount_fen"], p["status"]) for p in mine] == [(3000, "paid")]
    with Session() as s:
        paid_events = [
            json.loads(payload)["data"]
            for payload in s.execute(
                text("SELECT payload FROM outbox WHERE event_type = 'payout_paid'")
            ).scalars()
        ]
    assert [(e["shop_id"], e["amount_fen"]) for e in paid_events if e["shop_id"] == shop] == [
        (shop, 3000)
    ]
    run3 = payout_run(engine, Session, SandboxPayoutProvider(engine))
    assert [p for p in run3["payouts"] if p["shop_id"] == shop] == []
    assert keeper(Session, shop) == {
        domain.PENDING: 0,
        domain.SETTLEABLE: 0,
        domain.KEEPER_PAID: 3000,
    }
    with Session() as s:
        assert queries.balances(s, [domain.SUPPLIER_PAID], sup)[domain.SUPPLIER_PAID] == 27000


class Interrupted(BaseException):
    """The process died half-way through a run."""


class CrashAfter:
    def __init__(self, inner, n):
        self.inner, self.n = inner, n

    def transfer(self, *args):
        if self.n <= 0:
            raise Interrupted()
        self.n -= 1
        return self.inner.transfer(*args)


def test_a_run_interrupted_half_way_and_run_again_pays_nobody_twice(db):
    engine, Session = db
    shops = [next_id() for _ in range(4)]
    sup = next_id()
    for shop in shops:
        o = next_id()
        tx(Session, accrual.order_paid, RULES, paid_event(o, shop, sup, [(10000, 2000)]))
        record_state(Session, state_event(o, shop, sup, "completed"), "completed")
    tx(Session, settlement.run, RULES, T0 + timedelta(days=1))
    provider = SandboxPayoutProvider(engine)
    opened = tx(Session, payout_runs.open_run, RULES)
    with pytest.raises(Interrupted):
        payout_runs.transfer_all(CrashAfter(provider, 2), opened["payouts"], 3)
    # the process died: nothing marked paid, two transfers happened at the provider
    run = payout_run(engine, Session, provider)
    paid = {p["shop_id"]: p["amount_fen"] for p in run["payouts"] if p["status"] == "paid"}
    assert {s: paid.get(s) for s in shops} == {s: 2000 for s in shops}
    with Session() as s:
        keys = s.execute(
            text(
                "SELECT party_id, count(*), sum(amount_fen) FROM sandbox_transfers "
                "WHERE party_kind='keeper' GROUP BY party_id"
            )
        ).all()
    transfers = {r[0]: (r[1], r[2]) for r in keys}
    assert all(transfers[s] == (1, 2000) for s in shops)
    assert all(keeper(Session, s)[domain.KEEPER_PAID] == 2000 for s in shops)


def test_the_journal_is_append_only(db):
    engine, Session = db
    shop, sup, order = next_id(), next_id(), next_id()
    tx(Session, accrual.order_paid, RULES, paid_event(order, shop, sup, [(1000, 1000)]))
    with pytest.raises(DBAPIError):  # the append-only triggers refuse
        with Session.begin() as s:
            s.execute(text("UPDATE journal SET amount_fen = 0"))
    with pytest.raises(DBAPIError):  # the append-only triggers refuse
        with Session.begin() as s:
            s.execute(text("DELETE FROM journal"))
    assert books(Session)["balanced"]


def test_monthly_statement_lists_the_entries_with_opening_and_closing_balances(db):
    engine, Session = db
    shop, sup, order = next_id(), next_id(), next_id()
    tx(Session, accrual.order_paid, RULES, paid_event(order, shop, sup, [(10000, 1000)]))
    tx(
        Session,
        accrual.order_refunded,
        RULES,
        refund_event(order, shop, sup, 10000, 5000, T0 + timedelta(days=1)),
    )
    with Session() as s:
        csv_text = queries.statement_csv(s, shop, "2026-10")
    rows = [r.split(",") for r in csv_text.strip().splitlines()]
    assert rows[0][:7] == [
        "date",
        "entry",
        "kind",
        "order_id",
        "pending_fen",
        "settleable_fen",
        "paid_fen",
    ]
    assert rows[1][2] == "opening_balance" and rows[-1][2] == "closing_balance"
    assert [r[4] for r in rows[2:-1]] == ["1000", "-500"]
    assert rows[-1][4] == "500"


# --- the property ----------------------------------------------------------------------------
order_st = st.fixed_dictionaries(
    {
        "shop": st.sampled_from([0, 1, None]),
        "self_referral": st.booleans(),
        "lines": st.lists(
            st.tuples(st.integers(1, 30000), st.integers(0, 3000)), min_size=1, max_size=3
        ),
        # (percent, None): a refund of that share of what is left, named by no item (an old
        # message: payouts spreads it); (percent, k): of what is left of line k, naming it
        "refunds": st.lists(
            st.tuples(st.integers(0, 100), st.one_of(st.none(), st.integers(0, 2))), max_size=3
        ),
        "end": st.sampled_from(["none", "received", "completed"]),
        "hour": st.integers(0, 3),  # paid at T0 + hour
    }
)
level_st = st.tuples(st.integers(0, 3), st.sampled_from([0, 50, 100, 200]))  # (hour, bonus)
op_st = st.one_of(
    st.tuples(st.just("settle"), st.integers(0, 20)),
    st.tuples(st.just("payout"), st.sampled_from(["ok", "fail", "timeout", "crash"])),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    orders=st.lists(order_st, min_size=1, max_size=5),
    ops=st.lists(op_st, max_size=5),
    bonus=st.sampled_from([0, 50, 200]),
    levels=st.lists(level_st, max_size=2),
    data=st.data(),
)
def test_books_balance_and_keepers_get_exactly_what_orders_earned(
    db, orders, ops, bonus, levels, data
):
    engine, Session = db
    shops = [next_id(), next_id()]
    sup = next_id()
    tx(
        Session,
        accrual.level_changed,
        RULES,
        *level(shops[0], "x", bonus, "2026-09", T0 - timedelta(days=1)),
    )
    events, facts = [], {}
    for o in orders:
        oid, shop = next_id(), (shops[o["shop"]] if o["shop"] is not None else None)
        ev = paid_event(
            oid, shop, sup, o["lines"], o["self_referral"], at=T0 + timedelta(hours=o["hour"])
        )
        paid = ev.paid_fen
        facts[oid] = {"shop": shop, "ev": ev, "paid": paid, "hour": o["hour"]}
        events.append(("paid", oid, ev))
        total, left = 0, {i: a for i, (a, _) in enumerate(o["lines"])}
        for pct, k in o["refunds"]:
            if k is None:
                amount = (paid - total) * pct // 100
                items = None
            else:
                k %= len(o["lines"])
                amount = left[k] * pct // 100
                left[k] -= amount
                items = {k: amount}
            if amount == 0:
                continue
            total += amount
            ev = refund_event(oid, shop, sup, paid, total, items=items, refund_id=next_id())
            events.append(("refund", oid, ev))
        if o["end"] != "none":
            events.append((o["end"], oid, state_event(oid, shop, sup, o["end"])))
    for hour, level_bonus in levels:  # level changes of shop 0, reordered with the orders
        events.append(("level", hour, level_bonus))
    # duplicated and reordered events, with settlement and payout runs in between
    dupes = data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
    stream = data.draw(st.permutations(events + dupes + ops))
    seen: dict[int, dict] = {oid: {"paid": False, "refunded": 0, "items": {}} for oid in facts}
    seen_levels = [(T0 - timedelta(days=1), 0, bonus)]  # (effective, arrival, bonus)

    def bonus_at(paid_at):
        return max(c for c in seen_levels if c[0] <= paid_at)[2]

    def expected(shop):
        total = 0
        for oid, f in facts.items():
            ev = f["ev"]
            if f["shop"] != shop or not seen[oid]["paid"] or ev.self_referral:
                continue
            b = bonus_at(T0 + timedelta(hours=f["hour"])) if shop == shops[0] else 0
            amounts = [ln.amount_fen for ln in ev.lines]
            c = [apply_bps(ln.amount_fen, ln.commission_bps + b) for ln in ev.lines]
            # each line refunded by what refunds named for it, the rest spread over what is
            # left of each line; each line's commission reversed at its own rate
            named = [0] * len(amounts)
            for items in seen[oid]["items"].values():
                for p, fen in (items or {}).items():
                    named[p] += fen
            named = [min(a, n) for a, n in zip(amounts, named, strict=True)]
            room = [a - n for a, n in zip(amounts, named, strict=True)]
            rest = max(0, min(seen[oid]["refunded"], sum(amounts)) - sum(named))
            spread = allocate(min(rest, sum(room)), room)
            r = [n + x for n, x in zip(named, spread, strict=True)]
            total += sum(ci - prorate(ri, ai, ci) for ci, ri, ai in zip(c, r, amounts, strict=True))
        return total

    def check():
        b = books(Session)
        assert b["balanced"], b
        for shop in shops:
            bal = keeper(Session, shop)
            assert sum(bal.values()) == expected(shop), (shop, bal)

    def do(step):
        kind = step[0]
        if kind == "paid":
            tx(Session, accrual.order_paid, RULES, step[2])
            seen[step[1]]["paid"] = True
        elif kind == "refund":
            tx(Session, accrual.order_refunded, RULES, step[2])
            seen[step[1]]["refunded"] = max(seen[step[1]]["refunded"], step[2].refunded_total_fen)
            items = step[2].items
            seen[step[1]]["items"][step[2].refund_id] = (
                None if items is None else {i.product_id: i.amount_fen for i in items}
            )
        elif kind == "level":
            at = T0 + timedelta(hours=step[1])
            tx(Session, accrual.level_changed, RULES, *level(shops[0], "x", step[2], "2026-10", at))
            seen_levels.append((at, len(seen_levels), step[2]))
        elif kind in ("received", "completed"):
            record_state(Session, step[2], kind)
        elif kind == "settle":
            tx(Session, settlement.run, RULES, T0 + timedelta(days=step[1]))
        elif kind == "payout":
            mode = step[1]
            party = ",".join(f"keeper:{s}" for s in shops) + f",supplier:{sup}"
            provider = SandboxPayoutProvider(
                engine,
                fail=party if mode == "fail" else None,
                timeout=party if mode == "timeout" else None,
            )
            if mode == "crash":
                opened = tx(Session, payout_runs.open_run, RULES)
                try:
                    payout_runs.transfer_all(CrashAfter(provider, 1), opened["payouts"], 3)
                except Interrupted:
                    pass
            else:
                payout_run(engine, Session, provider)
        check()

    for step in stream:
        do(step)
    # the end of history: windows close, transfers work again
    do(("settle", 30))
    do(("payout", "ok"))
    with Session() as s:
        # no order settled twice, no payout transferred twice, paid = what moved
        settles = s.execute(
            select(JournalPosting.entry_id, func.count())
            .where(JournalPosting.kind == "settlement")
            .group_by(JournalPosting.entry_id)
        ).all()
        assert all(n == 2 for _, n in settles)
        for shop in shops:  # the shop's settlement entries hold each settled order once
            posted = s.execute(
                select(func.coalesce(func.sum(JournalPosting.amount_fen), 0)).where(
                    JournalPosting.kind == "settlement",
                    JournalPosting.account == domain.SETTLEABLE,
                    JournalPosting.party_id == shop,
                )
            ).scalar_one()
            per_order = s.execute(
                text(
                    "SELECT coalesce(sum(settled_commission_fen), 0) FROM order_facts "
                    "WHERE shop_id = :p AND settled_at IS NOT NULL AND NOT self_referral"
                ),
                {"p": shop},
            ).scalar_one()
            assert int(posted) == int(per_order)
        for shop in shops:
            moved = s.execute(
                text(
                    "SELECT coalesce(sum(amount_fen), 0) FROM sandbox_transfers "
                    "WHERE party_kind='keeper' AND party_id=:p"
                ),
                {"p": shop},
            ).scalar_one()
            rows = s.execute(
                select(func.coalesce(func.sum(Payout.amount_fen), 0)).where(
                    Payout.party_kind == "keeper", Payout.party_id == shop, Payout.status == "paid"
                )
            ).scalar_one()
            bal = queries.balances(s, queries.KEEPER_ACCOUNTS, shop)
            assert int(moved) == int(rows) == bal[domain.KEEPER_PAID]
            open_ = s.execute(
                select(func.count())
                .select_from(Payout)
                .where(Payout.party_id == shop, Payout.status != "paid")
            ).scalar_one()
            assert open_ == 0
            if bal[domain.SETTLEABLE] >= RULES.min_payout_fen:
                pytest.fail(f"shop {shop} left {bal} unpaid")


def test_batch_accrual_matches_one_event_at_a_time(db):
    engine, Session = db
    shop, sup = next_id(), next_id()
    tx(
        Session,
        accrual.level_changed,
        RULES,
        *level(shop, "senior", 50, "2026-09", T0 - timedelta(days=1)),
    )
    a, b, c, d = next_id(), next_id(), next_id(), next_id()
    tx(Session, accrual.order_paid, RULES, paid_event(a, shop, sup, [(10000, 1000)]))
    tx(Session, accrual.order_refunded, RULES, refund_event(b, shop, sup, 10000, 5000))
    batch = [
        paid_event(a, shop, sup, [(10000, 1000)]),  # already accrued
        paid_event(b, shop, sup, [(10000, 1000)]),  # its refund came first
        paid_event(c, shop, sup, [(333, 1000), (1001, 1000)]),
        paid_event(c, shop, sup, [(333, 1000), (1001, 1000)]),  # duplicate in the batch
        paid_event(d, None, sup, [(5000, 1000)]),
    ]
    assert tx(Session, accrual.orders_paid, RULES, batch) == 3
    assert tx(Session, accrual.orders_paid, RULES, batch) == 0
    expected = 1050 + (1050 - 525) + (apply_bps(333, 1050) + apply_bps(1001, 1050))
    assert keeper(Session, shop)[domain.PENDING] == expected
    assert books(Session)["balanced"]


def test_a_level_change_arriving_after_orders_it_covers_reprices_them(db):
    engine, Session = db
    shop, sup = next_id(), next_id()
    before, after, refunded, settled = next_id(), next_id(), next_id(), next_id()
    change = T0 + timedelta(hours=1)
    tx(Session, accrual.order_paid, RULES, paid_event(before, shop, sup, [(10000, 1000)]))
    for o in (after, refunded, settled):
        tx(
            Session,
            accrual.order_paid,
            RULES,
            paid_event(o, shop, sup, [(10000, 1000)], at=change + timedelta(minutes=5)),
        )
    tx(Session, accrual.order_refunded, RULES, refund_event(refunded, shop, sup, 10000, 5000))
    record_state(Session, state_event(settled, shop, sup, "completed"), "completed")
    tx(Session, settlement.run, RULES, T0 + timedelta(days=1))
    # the level event (effective an hour in) is processed only now
    tx(Session, accrual.level_changed, RULES, *level(shop, "super", 200, "2026-09", change))
    tx(
        Session, accrual.level_changed, RULES, *level(shop, "super", 200, "2026-09", change)
    )  # again
    with Session() as s:
        lines = {ln["order_id"]: ln for ln in queries.earnings(s, shop)["lines"]}
    assert lines[before]["commission_fen"] == 1000 and lines[before]["bonus_bps"] == 0
    assert lines[after]["commission_fen"] == 1200 and lines[after]["bonus_bps"] == 200
    assert lines[refunded]["net_commission_fen"] == 600
    assert keeper(Session, shop) == {
        domain.PENDING: 1000 + 1200 + 600,
        domain.SETTLEABLE: 1200,
        domain.KEEPER_PAID: 0,
    }
    with Session() as s:
        assert queries.balances(s, [domain.SUPPLIER_PAYABLE], sup)[domain.SUPPLIER_PAYABLE] == (
            9000 + 8800 + (10000 - 5000 - 600) + 8800
        )
    assert books(Session)["balanced"]


def test_replaying_the_event_history_into_a_fresh_database_rebuilds_the_same_balances(
    make_database,
):
    import random

    shop, other, sup = next_id(), next_id(), next_id()
    history = [("level", level(shop, "senior", 50, "2026-09", T0 - timedelta(days=3)))]
    for i in range(12):
        oid, s = next_id(), (shop, other, None)[i % 3]
        ev = paid_event(
            oid, s, sup, [(1000 + 337 * i, 800 + 50 * i)], i == 4, at=T0 + timedelta(hours=i)
        )
        history.append(("paid", ev))
        if i % 2:
            history.append(("refund", refund_event(oid, s, sup, ev.paid_fen, 300 + 10 * i)))
        if i % 4 == 1:
            history.append(("refund", refund_event(oid, s, sup, ev.paid_fen, ev.paid_fen)))
        history.append(("received", state_event(oid, s, sup, "received", T0 + timedelta(days=1))))

    def replay(events):
        engine = make_engine(make_database("payouts"))
        Session = sessionmaker(bind=engine, expire_on_commit=False)
        for kind, ev in events:
            if kind == "level":
                tx(Session, accrual.level_changed, RULES, *ev)
            elif kind == "paid":
                tx(Session, accrual.order_paid, RULES, ev)
            elif kind == "refund":
                tx(Session, accrual.order_refunded, RULES, ev)
            else:
                record_state(Session, ev, kind)
        tx(Session, settlement.run, RULES, T0 + timedelta(days=20))
        with Session() as s:
            out = (
                queries.check_books(s)["accounts"],
                [queries.balances(s, queries.KEEPER_ACCOUNTS, p) for p in (shop, other)],
                queries.balances(s, [domain.SUPPLIER_PAYABLE], sup),
            )
        engine.dispose()
        return out

    in_order = replay(history)
    shuffled = history + random.Random(7).sample(history, 5)
    random.Random(11).shuffle(shuffled)
    assert replay(shuffled) == in_order
    assert in_order[1][0][domain.SETTLEABLE] > 0


def test_a_batch_of_settle_signals_merges_into_the_facts_in_one_statement(db):
    """``orders_received`` / ``orders_completed`` on this database: one upsert per batch, the
    first supplier and completion, the earliest receipt and window, a repeat in the batch."""
    from sqlalchemy import event as sa_event

    from payouts.handlers.journal import utc
    from payouts.models import OrderFacts

    def aware(dt):  # SQLite hands back naive UTC
        return None if dt is None else utc(dt)

    engine, Session = db
    shop, sup, other = next_id(), next_id(), next_id()
    known, unknown, twice = next_id(), next_id(), next_id()
    tx(Session, accrual.order_paid, RULES, paid_event(known, shop, sup, [(10000, 1000)]))
    at = T0 + timedelta(days=2)
    cst = timezone(timedelta(hours=8))
    receipts = [
        state_event(known, None, other, "received", at),  # the paid order keeps its supplier
        state_event(unknown, shop, other, "received", at.astimezone(cst)),  # no facts yet
        state_event(twice, shop, sup, "received", at + timedelta(hours=1)),
        state_event(twice, None, other, "received", at).model_copy(  # earlier, no window
            update={"after_sales_until": None}
        ),
    ]
    sent: list[str] = []

    def count(conn, cursor, statement, *args):
        sent.append(statement.split()[0])

    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        tx(Session, settlement.orders_received, receipts)
        tx(Session, settlement.orders_received, [])  # nothing new in a batch: nothing sent
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    assert sent == ["INSERT"]
    later = [state_event(known, shop, sup, "completed", at + timedelta(days=3))]
    tx(Session, settlement.orders_completed, later)
    tx(Session, settlement.orders_completed, [state_event(known, shop, sup, "completed", at)])
    with Session() as s:
        got = {
            f.order_id: (
                f.supplier_id,
                f.shop_id,
                aware(f.received_at),
                aware(f.after_sales_until),
                aware(f.completed_at),
            )
            for f in s.scalars(
                select(OrderFacts).where(OrderFacts.order_id.in_([known, unknown, twice]))
            )
        }
    window = at + AFTER_SALES
    assert got == {
        known: (sup, shop, at, window, at + timedelta(days=3)),  # the first completion stays
        unknown: (other, shop, at, window, None),
        twice: (sup, shop, at, window + timedelta(hours=1), None),
    }
    # a later batch with an earlier receipt and window moves both back, a later one neither
    tx(Session, settlement.orders_received, [state_event(twice, shop, sup, "received", T0)])
    tx(
        Session,
        settlement.order_received,
        state_event(known, shop, sup, "received", at + AFTER_SALES),
    )
    with Session() as s:
        assert aware(s.get(OrderFacts, twice).after_sales_until) == T0 + AFTER_SALES
        assert aware(s.get(OrderFacts, twice).received_at) == T0
        assert aware(s.get(OrderFacts, known).after_sales_until) == window
