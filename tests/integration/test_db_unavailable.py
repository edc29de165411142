"""Issue 12: a database that cannot be reached, a terminated backend or an exhausted pool is a
503 ``database_unavailable`` (never a 500); health reports retrying and parked events and the
age of the oldest unpublished outbox row."""

from __future__ import annotations

import contextlib
import os
import time
from datetime import timedelta
from types import SimpleNamespace

import psycopg2
import pytest
from kombu import Connection, Exchange, Queue
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import create_engine, insert, text

from shared import clock
from shared.db import Database, DatabaseHandle, service_metadata
from shared.errors import ServiceUnavailable
from shared.testing import queries_sent

PG_ADMIN_DSN = os.environ.get("XIAOPU_TEST_PG_DSN", "dbname=postgres user=postgres host=127.0.0.1")


def handle(url: str, **config) -> DatabaseHandle:
    provider = Database(service_metadata(), relay=False)
    provider.container = SimpleNamespace(  # type: ignore[assignment]
        config={"DATABASE_URL": url, **config}, service_name="probe"
    )
    provider.setup()
    return DatabaseHandle(provider)


def assert_unavailable(fn) -> ServiceUnavailable:
    with pytest.raises(ServiceUnavailable) as caught:
        fn()
    assert caught.value.code == "database_unavailable" and caught.value.status == 503
    return caught.value


def test_an_unreachable_database_is_503_not_500():
    db = handle("postgresql+psycopg2://postgres@127.0.0.1:1/nowhere")

    def write():
        with db.unit_of_work() as uow:
            uow.session.execute(text("SELECT 1"))

    def read():
        with db.read() as session:
            session.execute(text("SELECT 1"))

    assert_unavailable(write)
    assert_unavailable(read)
    assert_unavailable(db.outbox_backlog)


@pytest.mark.postgres_only
def test_an_exhausted_pool_is_503_within_the_pool_timeout(make_database):
    db = handle(make_database("orders"), DB_POOL_SIZE=1, DB_POOL_OVERFLOW=0, DB_POOL_TIMEOUT=0.3)
    try:
        with db.read() as held:
            held.execute(text("SELECT 1"))  # the pool's only connection, checked out
            started = time.monotonic()

            def another():
                with db.unit_of_work() as uow:
                    uow.session.execute(text("SELECT 1"))

            assert_unavailable(another)
            assert time.monotonic() - started < 3
        with db.read() as session:  # given back: the next request is served
            assert session.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        db.provider.engine.dispose()


@pytest.mark.postgres_only
def test_a_terminated_backend_is_503_and_the_next_request_is_served(make_database):
    url = make_database("orders")
    db = handle(url)
    name = url.rsplit("/", 1)[1]
    try:
        with db.read() as session:
            assert session.execute(text("SELECT 1")).scalar_one() == 1
        admin = psycopg2.connect(PG_ADMIN_DSN)  # the same server the test databases are on
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
        admin.close()

        def write():
            with db.unit_of_work() as uow:
                uow.session.execute(text("SELECT 1"))

        assert_unavailable(write)  # the pooled connection was killed under it
        with db.unit_of_work() as uow:  # a fresh connection
            assert uow.session.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        db.provider.engine.dispose()


def test_health_reports_retrying_and_parked_events_and_the_outbox_age(
    start_service, service_config, make_database, rabbit_config
):
    url = make_database("share")
    container = start_service("share", database_url=url, OUTBOX_RELAY_ENABLED=0)
    queue = "evt-orders-order_paid--share.on_order_paid"
    with Connection(rabbit_config["AMQP_URI"]) as conn:
        producer = conn.Producer()
        retry = Queue(
            f"{queue}.retry",
            exchange=Exchange(""),
            routing_key=f"{queue}.retry",
            durable=True,
            queue_arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue},
        )
        dead = Queue(
            f"{queue}.dead", exchange=Exchange(""), routing_key=f"{queue}.dead", durable=True
        )
        for target, count, extra in ((retry, 2, {"expiration": 600}), (dead, 3, {})):
            for n in range(count):
                producer.publish(
                    {"n": n}, exchange="", routing_key=target.name, declare=[target], **extra
                )
    eng = create_engine(container.config["DATABASE_URL"])
    outbox = service_metadata().tables["outbox"]
    with eng.begin() as conn:
        conn.execute(
            insert(outbox).values(
                event_id="e-1",
                event_type="share_created",
                payload="{}",
                created_at=clock.real_now() - timedelta(seconds=120),
                attempts=0,
            )
        )
    eng.dispose()
    with ClusterRpcProxy(service_config("gateway")) as cluster:
        health = cluster.share.health()
    assert health["status"] == "ok"
    assert health["queues"][queue] == {"retrying": 2, "parked": 3}
    others = [q for name, q in health["queues"].items() if name != queue]
    assert others and all(q == {"retrying": 0, "parked": 0} for q in others)
    assert health["outbox_backlog"] == 1
    assert 120 <= health["outbox_oldest_age_seconds"] < 600


def terminate_backends(name: str) -> None:
    admin = psycopg2.connect(PG_ADMIN_DSN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
    admin.close()
    time.sleep(0.2)  # the backend's FATAL reaches the client socket


@pytest.mark.postgres_only
def test_a_connection_that_dies_while_checked_out_gives_its_slot_back(make_database):
    """SQLAlchemy resets a connection's isolation level when it is checked in (the autocommit
    fast reads after a REPEATABLE READ snapshot read); when the backend died while the
    connection was checked out, that reset raises before the slot is given back, and the slot
    is lost for good. Under the backend terminations of fault suite (d) the catalog's pool of
    two leaked both and answered 503 to every checkout from then on. With a pool of ONE
    connection: after each death the next request is served."""
    url = make_database("catalog")
    db = handle(url, DB_POOL_SIZE=1, DB_POOL_OVERFLOW=0, DB_POOL_TIMEOUT=0.5)
    try:
        for _ in range(3):
            with db.read() as session:  # the connection's isolation level: REPEATABLE READ
                assert session.execute(text("SELECT 1")).scalar_one() == 1
            with contextlib.suppress(ServiceUnavailable):
                with db.autocommit() as conn:  # AUTOCOMMIT, reset at check-in
                    assert conn.execute(text("SELECT 2")).scalar_one() == 2
                    terminate_backends(url.rsplit("/", 1)[1])
            with db.autocommit() as conn:  # the slot came back, with a live connection
                assert conn.execute(text("SELECT 3")).scalar_one() == 3
    finally:
        db.provider.engine.dispose()


@pytest.mark.postgres_only
def test_an_autocommit_read_is_one_round_trip_even_after_a_snapshot_read(make_database):
    """``DatabaseHandle.autocommit`` on ``shared.pg`` (the default): the snapshot read's
    BEGIN goes with its statement, each autocommit read is its one query, and switching the
    level back and forth sends nothing."""
    db = handle(make_database("catalog"), DB_POOL_SIZE=1, DB_POOL_OVERFLOW=0, DB_POOL_TIMEOUT=0.5)
    sent = queries_sent(db.provider.engine)
    try:
        with db.read() as session:
            session.execute(text("SHOW transaction_isolation"))
        for _ in range(2):
            with db.autocommit() as conn:
                assert conn.execute(text("SELECT 1")).scalar_one() == 1
        with db.unit_of_work() as uow:
            level = uow.session.execute(text("SHOW transaction_isolation")).scalar_one()
        assert level == "read committed"
        assert sent == [
            "BEGIN ISOLATION LEVEL REPEATABLE READ;SHOW transaction_isolation",
            "ROLLBACK",
            "SELECT 1",
            "SELECT 1",
            "BEGIN ISOLATION LEVEL READ COMMITTED;SHOW transaction_isolation",
            "COMMIT",
        ]
    finally:
        db.provider.engine.dispose()


@pytest.mark.postgres_only
def test_an_autocommit_read_is_one_round_trip_without_the_folded_begin(make_database):
    """``DB_FOLD_BEGIN=0`` (plain psycopg2): ``DatabaseHandle.autocommit`` switches the pooled
    psycopg2 connection itself and leaves it at psycopg2's default isolation level:
    SQLAlchemy's AUTOCOMMIT execution option left an explicit READ COMMITTED behind, after
    which psycopg2 sent ``SET default_transaction_isolation TO DEFAULT`` on every switch back —
    a second round trip per read (orders' checkout)."""
    url = make_database("catalog")
    db = handle(url, DB_POOL_SIZE=1, DB_POOL_OVERFLOW=0, DB_POOL_TIMEOUT=0.5, DB_FOLD_BEGIN=0)
    try:
        with db.read() as session:  # REPEATABLE READ, reset by SQLAlchemy on check-in
            assert session.execute(text("SHOW transaction_isolation")).scalar_one() == (
                "repeatable read"
            )
        for _ in range(2):
            with db.autocommit() as conn:
                raw = conn.connection.dbapi_connection
                assert raw.autocommit is True
                assert conn.execute(text("SELECT 1")).scalar_one() == 1
            # back in the pool: out of autocommit, at the default level (nothing to reset)
            assert raw.autocommit is False and raw.isolation_level is None
        with db.unit_of_work() as uow:  # a transaction after it: the server's READ COMMITTED
            level = uow.session.execute(text("SHOW transaction_isolation")).scalar_one()
        assert level == "read committed"
    finally:
        db.provider.engine.dispose()
