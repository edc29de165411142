"""``handlers.paid`` (the service's order_paid: an order's first event in four statements) writes
exactly the rows its general path (``accrual.order_paid`` + ``fraud.order_paid``) writes, on a
history that walks every branch: a level bonus, a keeper's fingerprints, a buyer sharing them,
velocity, a suspended shop, a self-referral, no shop, a refund before its payment, a payment
redelivered under a new event id."""

from datetime import timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select
from test_payouts_fraud_handlers import (
    KEEPER,
    KEEPER_ADDRESS,
    KEEPER_PHONE,
    SHOP,
    SUPPLIER,
    T0,
    general_path,
    keeper_opened_shop,
    paid,
)

from payouts import queries
from payouts.domain import PayoutRules
from payouts.handlers import accrual, fraud
from payouts.handlers import paid as paid_handler
from payouts.models import AccrualHold, Base, FraudFingerprint, JournalPosting, OrderFacts
from shared.contracts.events import LevelChanged, OrderRefunded, ShopSuspension
from shared.testing import FakeUnitOfWork

RULES = PayoutRules(fraud_velocity_max_orders=2, fraud_velocity_window_seconds=3600)


def history(uow, take_order_paid) -> list:
    """Every kind of event order_paid meets, in an order that exercises each branch."""
    opened = []
    keeper_opened_shop(uow)
    level = LevelChanged(
        shop_id=SHOP, month="2026-09", old_level="newcomer", new_level="super", bonus_bps=200
    )
    accrual.level_changed(uow, RULES, level, T0 - timedelta(days=1))
    # the keeper's own purchase (no shop): their address becomes known
    pay = [
        paid(1, buyer=KEEPER, phone=KEEPER_PHONE, address=KEEPER_ADDRESS, shop_id=None),
        paid(2, phone="+86 139-1234-5678", address="杭州市西湖区文三路1号"),  # same_* holds
        paid(3, buyer=31),  # a stranger
        paid(4, buyer=31, at=T0 + timedelta(minutes=1)),  # twice: within the velocity limit
        paid(5, buyer=99, at=T0 + timedelta(minutes=2)),  # a third from that phone: velocity
        paid(6, visitor="v-1").model_copy(update={"self_referral": True}),  # earns nothing
    ]
    for ev in pay:
        opened.append(take_order_paid(uow, RULES, ev))
    end_batch = getattr(take_order_paid, "end_batch", lambda: None)
    end_batch()  # a batch holds order_paid events only: other events come after it
    # a refund that arrives before its payment, then the payment (a buyer already sharing
    # the keeper's fingerprints: order 2's)
    refund = OrderRefunded(
        order_id=7,
        refund_id=1,
        supplier_id=SUPPLIER,
        shop_id=SHOP,
        amount_fen=3000,
        paid_fen=10000,
        refunded_total_fen=3000,
        at=(T0 + timedelta(hours=1)).isoformat(),
    )
    accrual.order_refunded(uow, RULES, refund)
    opened.append(take_order_paid(uow, RULES, paid(7, at=T0 + timedelta(minutes=30))))
    # the same payment again under another event id: nothing more
    opened.append(take_order_paid(uow, RULES, paid(3, buyer=31)))
    suspension = ShopSuspension(
        shop_id=SHOP,
        member_id=KEEPER,
        shop_number="123456",
        suspended=True,
        cause="shop",
        reason="刷单调查",
        by="admin:admin",
        at=(T0 + timedelta(hours=2)).isoformat(),
    )
    end_batch()
    fraud.shop_suspension(uow, suspension, T0 + timedelta(hours=2))
    opened.append(take_order_paid(uow, RULES, paid(8, at=T0 + timedelta(hours=3), buyer=50)))
    end_batch()
    return opened


class Batched:
    """``handlers.paid`` as the service's batch takes it: the accruals wait in one
    ``Postings`` until the batch ends."""

    def __init__(self):
        self.postings = None

    def __call__(self, uow, rules, event):
        if self.postings is None:
            self.postings = paid_handler.Postings(uow)
        return paid_handler.order_paid(uow, rules, event, self.postings)

    def end_batch(self):
        if self.postings is not None:
            self.postings.flush()


def rows(uow) -> dict:
    s = uow.session
    s.flush()

    def plain(model, drop=("id",)):
        cols = [c for c in model.__table__.c if c.name not in drop]
        return sorted(tuple(r) for r in s.execute(select(*cols)).all())

    return {
        "facts": plain(OrderFacts, drop=()),
        "journal": plain(JournalPosting),
        "fingerprints": plain(FraudFingerprint),
        "holds": plain(AccrualHold, drop=("id", "created_at")),
    }


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres_only)])
def database(request):
    """Where a test's units of work keep their rows: SQLite in memory, or a fresh PostgreSQL
    database each (whose first-event path writes the facts row and the fingerprints in one
    statement, ``paid.facts_then_fingerprints``). Call it for a unit of work."""
    made: list[FakeUnitOfWork] = []
    # asked for now, so that its databases are dropped after these units of work close
    make_database = request.getfixturevalue("make_database") if request.param != "sqlite" else None

    def make() -> FakeUnitOfWork:
        url = make_database("payouts", migrate=False) if make_database else None
        made.append(FakeUnitOfWork(Base.metadata, url=url))
        return made[-1]

    yield make
    for uow in made:
        uow.close()


def test_the_first_event_path_writes_what_the_general_path_writes(database):
    fast, general = database(), database()
    opened_fast = history(fast, paid_handler.order_paid)
    opened_general = history(general, general_path)
    assert [len(o) for o in opened_fast] == [len(o) for o in opened_general]
    assert [len(o) for o in opened_fast] == [0, 2, 0, 0, 1, 0, 3, 0, 1]
    assert rows(fast) == rows(general)
    assert queries.check_books(fast.session)["balanced"]


def test_in_a_batch_the_first_event_path_writes_what_the_general_path_writes(database):
    batched, general = database(), database()
    opened_batched = history(batched, Batched())
    opened_general = history(general, general_path)
    assert [len(o) for o in opened_batched] == [len(o) for o in opened_general]
    assert rows(batched) == rows(general)
    assert queries.check_books(batched.session)["balanced"]


def counted_after_the_shop_opened(uow: FakeUnitOfWork) -> tuple[FakeUnitOfWork, list[str]]:
    """``uow`` where the keeper's shop is open, and the first word of every statement sent
    from now on."""
    keeper_opened_shop(uow)
    uow.session.flush()
    statements: list[str] = []
    sa_event.listen(
        uow.engine, "before_cursor_execute", lambda *a: statements.append(a[2].split()[0])
    )
    return uow, statements


def test_a_batch_posts_its_new_orders_accruals_in_one_statement(database):
    uow, statements = counted_after_the_shop_opened(database())
    take = Batched()
    fingerprints = 0
    for n in (1, 2, 3):  # three strangers: nothing held
        stranger = paid(n, buyer=40 + n, phone=f"1390000000{n}", address=f"某路 {n} 号")
        assert take(uow, RULES, stranger) == []
        fingerprints += len(fraud.buyer_fingerprints(stranger))
    postgres = uow.engine.dialect.name == "postgresql"
    # read, then facts and fingerprints: one statement on PostgreSQL, two elsewhere
    each = ["SELECT", "WITH"] if postgres else ["SELECT", "INSERT", "INSERT"]
    assert statements == each * 3
    take.end_batch()
    assert statements[len(each) * 3 :] == ["INSERT"]  # the three accruals' postings
    assert len(rows(uow)["journal"]) > 3
    on_orders = [r for r in rows(uow)["fingerprints"] if r[3] == fraud.ORDER]
    assert len(on_orders) == fingerprints  # each stranger's, written with its facts row


def test_an_orders_first_event_takes_three_statements_on_postgresql_four_elsewhere(database):
    uow, statements = counted_after_the_shop_opened(database())
    assert paid_handler.order_paid(uow, RULES, paid(1)) == []
    if uow.engine.dialect.name == "postgresql":
        assert statements == ["SELECT", "WITH", "INSERT"]  # read, facts + fps, journal
    else:
        assert statements == ["SELECT", "INSERT", "INSERT", "INSERT"]  # read, facts, journal, fps
    statements.clear()
    # no shop, nothing earned: no read at all
    paid_handler.order_paid(uow, RULES, paid(2, shop_id=None))
    if uow.engine.dialect.name == "postgresql":
        assert statements == ["WITH", "INSERT"]
    else:
        assert statements == ["INSERT", "INSERT", "INSERT"]
