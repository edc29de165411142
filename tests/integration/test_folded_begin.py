"""``shared.pg``: each transaction's BEGIN goes out with its first statement (one round trip
less per transaction), and a transaction is still a transaction — isolated, atomic, at the
isolation level asked for, rolled back on an error — on real PostgreSQL. Every query the
connection sends is read off a counting cursor, so "one round trip less" is what was sent."""

from __future__ import annotations

import re
import time

import psycopg2
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import IntegrityError

from shared.db import folds_begin, make_engine
from shared.pg import PREPARED, commit_with_next
from shared.testing import queries_sent

pytestmark = pytest.mark.postgres_only


def counted(url: str, **kw) -> tuple:
    """An engine (``make_engine``, pool of one) with a table ``t``, and the list of every
    query its connection sends from then on."""
    engine = make_engine(url, pool_size=1, **kw)
    sent = queries_sent(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v INTEGER)"))
    sent.clear()
    return engine, sent


@pytest.fixture
def clients(make_database):
    """(engine, the queries it sends, another client's autocommit connection) on one fresh
    database with the table ``t``."""
    url = make_database("catalog", migrate=False)
    engine, sent = counted(url)
    other = outside(url)
    yield engine, sent, other
    other.close()
    engine.dispose()


def outside(url: str):
    """A plain psycopg2 connection of another client, in autocommit."""
    args = make_url(url).translate_connect_args(username="user", database="dbname")
    conn = psycopg2.connect(**args)
    conn.autocommit = True
    return conn


def scalar(conn, sql: str):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def test_a_transaction_sends_its_begin_with_its_first_statement(clients):
    engine, sent, _other = clients
    assert folds_begin(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1, 1)"))
        conn.execute(text("UPDATE t SET v = 2 WHERE id = 1"))
    assert sent == [
        "BEGIN ISOLATION LEVEL READ COMMITTED;INSERT INTO t VALUES (1, 1)",
        "UPDATE t SET v = 2 WHERE id = 1",
        "COMMIT",
    ]
    sent.clear()
    with engine.begin():  # a transaction that executes nothing sends nothing
        pass
    with engine.connect() as conn:
        conn.rollback()
    assert sent == []


def test_it_is_still_one_transaction_seen_by_nobody_until_it_commits(clients):
    engine, _sent, other = clients
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1, 1)"))
        first = conn.execute(text("SELECT txid_current()")).scalar_one()
        assert scalar(other, "SELECT count(*) FROM t") == 0  # not committed yet
        conn.execute(text("INSERT INTO t VALUES (2, 2)"))
        assert conn.execute(text("SELECT txid_current()")).scalar_one() == first
    assert scalar(other, "SELECT count(*) FROM t") == 2


def test_a_failing_statement_rolls_back_the_whole_transaction(clients):
    engine, sent, other = clients
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1, 1)"))
        conn.execute(text("INSERT INTO t VALUES (1, 2)"))  # the same key
    assert sent[-1] == "ROLLBACK"
    assert scalar(other, "SELECT count(*) FROM t") == 0
    # the failing FIRST statement: its BEGIN went out with it, and is rolled back
    sent.clear()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (5, 5)"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (5, 6)"))
    assert sent[-2:] == [
        "BEGIN ISOLATION LEVEL READ COMMITTED;INSERT INTO t VALUES (5, 6)",
        "ROLLBACK",
    ]
    with engine.connect() as conn:  # the pooled connection is clean and usable
        assert conn.execute(text("SELECT v FROM t")).scalars().all() == [5]
        assert scalar(conn.connection.dbapi_connection, "SELECT txid_current_if_assigned()") is None
        conn.rollback()


def test_a_snapshot_read_sees_one_snapshot_and_the_level_goes_back_for_free(clients):
    engine, sent, other = clients
    snapshot = engine.execution_options(isolation_level="REPEATABLE READ")
    with snapshot.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
        with other.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (1, 1)")  # committed in between
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
        conn.rollback()
    assert sent == [
        "BEGIN ISOLATION LEVEL REPEATABLE READ;SELECT count(*) FROM t",
        "SELECT count(*) FROM t",
        "ROLLBACK",
    ]
    sent.clear()
    with engine.connect() as conn:  # the next transaction: back at READ COMMITTED
        assert conn.execute(text("SHOW transaction_isolation")).scalar_one() == "read committed"
        conn.rollback()
    assert sent[0].startswith("BEGIN ISOLATION LEVEL READ COMMITTED;")


def test_autocommit_sends_no_begin_and_each_statement_stands_alone(clients):
    engine, sent, _other = clients
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        one = conn.execute(text("SELECT txid_current()")).scalar_one()
        two = conn.execute(text("SELECT txid_current()")).scalar_one()
    assert one != two  # two transactions: nothing held open between them
    assert sent == ["SELECT txid_current()", "SELECT txid_current()"]


def test_savepoints_and_executemany_fold_too(clients):
    from sqlalchemy.orm import Session

    engine, sent, _other = clients
    with Session(engine) as session:
        session.execute(text("INSERT INTO t VALUES (1, 1)"))
        with pytest.raises(IntegrityError), session.begin_nested():
            session.execute(text("INSERT INTO t VALUES (1, 2)"))
        session.execute(  # many parameter sets: the BEGIN would go alone (here: open)
            text("INSERT INTO t VALUES (:id, :v)"), [{"id": 2, "v": 2}, {"id": 3, "v": 3}]
        )
        session.commit()
    assert sent[0] == "BEGIN ISOLATION LEVEL READ COMMITTED;INSERT INTO t VALUES (1, 1)"
    assert sent[-1] == "COMMIT"
    sent.clear()
    with engine.begin() as conn:  # executemany first: its BEGIN goes out on its own
        conn.execute(
            text("UPDATE t SET v = :v WHERE id = :id"), [{"id": 2, "v": 9}, {"id": 3, "v": 9}]
        )
    assert sent[0] == "BEGIN ISOLATION LEVEL READ COMMITTED" and sent[-1] == "COMMIT"
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, v FROM t ORDER BY id")).all()
        conn.rollback()
    assert [tuple(r) for r in rows] == [(1, 1), (2, 9), (3, 9)]


def announce_last(conn) -> bool:
    return commit_with_next(conn.connection.dbapi_connection)


def test_the_last_statement_carries_the_commit(clients):
    engine, sent, other = clients
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1, 1)"))
        assert announce_last(conn)
        conn.execute(text("INSERT INTO t VALUES (2, 2)"))
        # committed already: another client sees both rows before the block ends
        assert scalar(other, "SELECT count(*) FROM t") == 2
    assert sent == [
        "BEGIN ISOLATION LEVEL READ COMMITTED;INSERT INTO t VALUES (1, 1)",
        "INSERT INTO t VALUES (2, 2);COMMIT",
    ]
    sent.clear()
    with engine.begin() as conn:  # a transaction of one statement: one round trip in all
        announce_last(conn)
        conn.execute(text("UPDATE t SET v = 3 WHERE id = 1"))
    assert sent == ["BEGIN ISOLATION LEVEL READ COMMITTED;UPDATE t SET v = 3 WHERE id = 1;COMMIT"]
    with engine.connect() as conn:  # the pooled connection is outside any transaction
        assert scalar(conn.connection.dbapi_connection, "SELECT txid_current_if_assigned()") is None
        assert conn.execute(text("SELECT v FROM t WHERE id = 1")).scalar_one() == 3
        conn.rollback()


def test_a_failing_last_statement_commits_nothing(clients):
    engine, sent, other = clients
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1, 1)"))
        announce_last(conn)
        conn.execute(text("INSERT INTO t VALUES (1, 2)"))  # the same key: the COMMIT is skipped
    assert sent[-2:] == ["INSERT INTO t VALUES (1, 2);COMMIT", "ROLLBACK"]
    assert scalar(other, "SELECT count(*) FROM t") == 0
    sent.clear()
    with engine.begin() as conn:  # the next transaction on that connection is a fresh one
        conn.execute(text("INSERT INTO t VALUES (7, 7)"))
    assert sent == ["BEGIN ISOLATION LEVEL READ COMMITTED;INSERT INTO t VALUES (7, 7)", "COMMIT"]
    assert scalar(other, "SELECT count(*) FROM t") == 1


def test_nothing_runs_after_the_commit_went_out(clients):
    engine, sent, other = clients
    with pytest.raises(RuntimeError, match="after the transaction's COMMIT"):
        with engine.begin() as conn:
            announce_last(conn)
            conn.execute(text("INSERT INTO t VALUES (1, 1)"))
            conn.execute(text("INSERT INTO t VALUES (2, 2)"))  # would run outside it: refused
    assert [q for q in sent if "(2, 2)" in q] == []
    assert scalar(other, "SELECT count(*) FROM t") == 1
    with engine.begin() as conn:  # and the connection goes on normally
        conn.execute(text("INSERT INTO t VALUES (3, 3)"))
    assert scalar(other, "SELECT count(*) FROM t") == 2


def test_the_unit_of_work_checks_the_deadline_before_the_last_statement(clients):
    """``UnitOfWork.commit_with_next`` refuses a commit that would start too late before the
    statement goes out (afterwards its COMMIT is gone with it), and ``unit_of_work`` does not
    refuse once it went: a 503 after the COMMIT would be a lie."""
    import threading
    from types import SimpleNamespace

    from sqlalchemy.orm import sessionmaker

    from catalog.models import Base
    from shared.db import DatabaseHandle
    from shared.errors import ServiceUnavailable

    engine, sent, other = clients
    provider = SimpleNamespace(
        container=SimpleNamespace(service_name="catalog"),
        metadata=Base.metadata,
        engine=engine,
        write_lock=threading.Lock(),
        sessionmaker=sessionmaker(engine),
        commit_margin=0.5,
        notify_outbox=lambda: None,
    )
    handle = DatabaseHandle(provider)  # type: ignore[arg-type]
    handle.deadline_at = time.time() + 0.2  # too late to commit
    with pytest.raises(ServiceUnavailable) as late, handle.unit_of_work() as uow:
        uow.session.execute(text("INSERT INTO t VALUES (1, 1)"))
        uow.commit_with_next()
        uow.session.execute(text("INSERT INTO t VALUES (2, 2)"))  # never sent
    assert late.value.code == "deadline_exceeded"
    assert not [q for q in sent if "(2, 2)" in q] and sent[-1] == "ROLLBACK"
    assert scalar(other, "SELECT count(*) FROM t") == 0

    handle.deadline_at = time.time() + 30
    with handle.unit_of_work() as uow:
        uow.session.execute(text("INSERT INTO t VALUES (1, 1)"))
        uow.commit_with_next()
        uow.session.execute(text("INSERT INTO t VALUES (2, 2)"))
        assert uow.last_announced
        handle.deadline_at = time.time()  # the deadline comes now: the COMMIT went already
    assert sent[-1] == "INSERT INTO t VALUES (2, 2);COMMIT"
    assert scalar(other, "SELECT count(*) FROM t") == 2


def test_a_hot_statement_is_prepared_once_per_connection(clients):
    engine, sent, other = clients
    insert = text("INSERT INTO t VALUES (:id, :v) RETURNING v * 10").execution_options(**PREPARED)
    with engine.begin() as conn:
        assert conn.execute(insert, {"id": 1, "v": 1}).scalar_one() == 10
        assert conn.execute(insert, {"id": 2, "v": 2}).scalar_one() == 20
    first, again = sent[0], sent[1]  # as psycopg2 gets them: values bound by name
    name = re.search(r"PREPARE (xp\d+) ", first).group(1)
    assert first == (
        f"BEGIN ISOLATION LEVEL READ COMMITTED;PREPARE {name} AS INSERT INTO t VALUES ($1, $2)"
        f" RETURNING v * 10;EXECUTE {name}(%(id)s, %(v)s)"
    )
    assert again == f"EXECUTE {name}(%(id)s, %(v)s)"
    sent.clear()
    with engine.begin() as conn:  # with the COMMIT folded too: one round trip
        commit_with_next(conn.connection.dbapi_connection)
        conn.execute(insert, {"id": 3, "v": 3})
    assert sent == [f"BEGIN ISOLATION LEVEL READ COMMITTED;EXECUTE {name}(%(id)s, %(v)s);COMMIT"]
    assert scalar(other, "SELECT sum(v) FROM t") == 6
    plain = text("SELECT v FROM t WHERE id = :id")  # not marked: sent as it is
    with engine.connect() as conn:
        assert conn.execute(plain, {"id": 3}).scalar_one() == 3
        conn.rollback()
    assert sent[-2:] == [
        "BEGIN ISOLATION LEVEL READ COMMITTED;SELECT v FROM t WHERE id = %(id)s",
        "ROLLBACK",
    ]


def test_a_failed_first_execution_prepares_again_under_a_fresh_name(clients):
    engine, sent, other = clients
    insert = text("INSERT INTO t VALUES (:id, :v)").execution_options(**PREPARED)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1, 1)"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert, {"id": 1, "v": 2})  # the same key: fails, prepared or not
    failed = [q for q in sent if "PREPARE" in q]
    assert len(failed) == 1
    with engine.begin() as conn:
        conn.execute(insert, {"id": 2, "v": 2})
        conn.execute(insert, {"id": 3, "v": 3})
    prepared = [q for q in sent if "PREPARE" in q]
    names = [re.search(r"PREPARE (xp\d+) ", q).group(1) for q in prepared]
    assert len(names) == 2 and names[0] != names[1]
    assert sent[-2].startswith("EXECUTE ") and scalar(other, "SELECT count(*) FROM t") == 3


def test_db_prepare_off_sends_every_statement_whole(make_database):
    engine, sent = counted(make_database("catalog", migrate=False), prepare=False)
    try:
        insert = text("INSERT INTO t VALUES (:id, :v)").execution_options(**PREPARED)
        with engine.begin() as conn:
            conn.execute(insert, {"id": 1, "v": 1})
        assert sent == [
            "BEGIN ISOLATION LEVEL READ COMMITTED;INSERT INTO t VALUES (%(id)s, %(v)s)",
            "COMMIT",
        ]
    finally:
        engine.dispose()


def test_turned_off_it_is_psycopg2_as_it_was(make_database):
    engine, _sent = counted(make_database("catalog", migrate=False), fold_begin=False)
    try:
        assert not folds_begin(engine)
        with engine.connect() as conn:
            assert conn.connection.dbapi_connection.autocommit is False
            conn.rollback()
    finally:
        engine.dispose()
