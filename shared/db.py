"""Each service's database: engine, unit of work, outbox and inbox.

``Database(metadata)`` is the nameko dependency. In a worker::

    with self.db.unit_of_work() as uow:
        shop = uow.session.get(Shop, shop_id)
        ...
        uow.emit("shop_opened", ShopChanged(...))   # outbox row in the same transaction

    with self.db.unit_of_work() as uow:         # in an event handler
        if not uow.claim(event, "on_product_changed"):
            return                              # already processed: redelivery changes nothing
        ...

The unit of work commits on a clean exit and rolls back on an exception, so a business row and
its event row are written together or not at all. After a commit that wrote events the outbox
relay (``shared.outbox``) is woken to publish them.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, cast

import eventlet
from nameko.extensions import DependencyProvider
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.dml import Insert as PgInsert
from sqlalchemy.dialects.postgresql.dml import OnConflictDoNothing as PgOnConflictDoNothing
from sqlalchemy.dialects.sqlite.dml import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite.dml import OnConflictDoNothing as SqliteOnConflictDoNothing
from sqlalchemy.engine import Connection, CursorResult, Engine, make_url
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import TextClause

from shared import clock
from shared.errors import ServiceUnavailable
from shared.ids import new_id
from shared.logs import current_correlation_id
from shared.lru import LRU
from shared.metrics import count_statement
from shared.pg import PREPARED, commit_with_next

if TYPE_CHECKING:
    from shared.contracts.events import EventData
    from shared.outbox import OutboxRelay

log = logging.getLogger(__name__)


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata() -> MetaData:
    """A service's MetaData: the shared constraint naming convention (stable names for
    Alembic on SQLite and PostgreSQL) with the outbox and inbox tables already in it."""
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    add_platform_tables(metadata)
    return metadata


def add_platform_tables(metadata: MetaData) -> None:
    """The outbox and inbox every service keeps in its own database."""
    Table(
        "outbox",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(80), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True, index=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", Text, nullable=True),
    )
    Table(
        "inbox",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("handler", String(120), primary_key=True),
        Column("event_type", String(80), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, index=True),
    )
    from shared.idempotency import add_table

    add_table(metadata)  # key → outcome of each mutating request (shared.idempotency)


# What an unreachable database, a terminated backend or an exhausted pool raises. Out of a unit
# of work or a read session they become ``ServiceUnavailable`` (503 ``database_unavailable``):
# the request did not happen and may be retried; never a 500.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
    DisconnectionError,
)
try:  # the driver's own errors, where SQLAlchemy lets them through unwrapped (e.g. resetting a
    # dead connection's isolation level when it is returned to the pool)
    import psycopg2

    UNAVAILABLE += (psycopg2.OperationalError, psycopg2.InterfaceError)
except ImportError:  # SQLite only
    pass


def database_unavailable(exc: BaseException) -> ServiceUnavailable:
    log.warning("database unavailable: %s", str(exc).splitlines()[0][:300] if str(exc) else exc)
    return ServiceUnavailable(
        "the database is unavailable; nothing was changed, try again shortly",
        code="database_unavailable",
    )


@contextmanager
def unavailable_as_503() -> Iterator[None]:
    try:
        yield
    except UNAVAILABLE as exc:
        raise database_unavailable(exc) from exc


def make_engine(
    url: str,
    pool_size: int = 10,
    max_overflow: int = 0,
    pool_timeout: float = 5.0,
    fold_begin: bool = True,
    prepare: bool = True,
) -> Engine:
    """The service's engine. On PostgreSQL through psycopg2, ``fold_begin`` (``DB_FOLD_BEGIN``)
    sends each transaction's BEGIN with its first statement, and ``prepare`` (``DB_PREPARE``)
    prepares the statements executed with ``shared.pg.PREPARED`` once per connection
    (``shared.pg``)."""
    if fold_begin:
        url = _folding(url)
    dialect_args = {"prepare": prepare} if url.startswith(FOLDED_DRIVER) else {}
    engine = _make_engine(url, pool_size, max_overflow, pool_timeout, **dialect_args)
    event.listen(engine, "before_cursor_execute", _count_statement)
    return engine


registry.register("postgresql.xiaopu_psycopg2", "shared.pg", "FoldedBeginDialect")
FOLDED_DRIVER = "postgresql+xiaopu_psycopg2"


def _folding(url: str) -> str:
    """``url`` on ``shared.pg``'s dialect when it names PostgreSQL through psycopg2."""
    parsed = make_url(url)
    if parsed.drivername not in ("postgresql", "postgresql+psycopg2"):
        return url
    return parsed.set(drivername=FOLDED_DRIVER).render_as_string(hide_password=False)


def folds_begin(engine: Engine) -> bool:
    """Whether ``engine`` sends each BEGIN with its transaction's first statement."""
    return getattr(engine.dialect, "folds_begin", False)


def _count_statement(*_args: Any) -> None:
    count_statement()


def _make_engine(
    url: str, pool_size: int, max_overflow: int, pool_timeout: float, **dialect_args: Any
) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # No pool_pre_ping: it costs a round trip on every checkout, a large share of a cheap read.
    # Connections are recycled instead; one dropped by a database restart fails one request.
    # Small pools: PostgreSQL's default limit (100) is shared by every process of the platform
    # (README "Connection budget"); DB_POOL_SIZE / DB_POOL_OVERFLOW size them per process. No
    # overflow by default: an overflow connection is closed as soon as it is checked in while
    # the pool is full, so a load around the pool's size opened a new backend every few
    # requests (orders under the money-path load: 0.3 new PostgreSQL sessions per paid order
    # with 5 + 5; 0.02 — the pool filling once — with 10 + 0, the same ten at most).
    # pool_timeout (DB_POOL_TIMEOUT) stays below the RPC deadline, so an exhausted pool answers
    # 503 database_unavailable before the caller gives up on us.
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_recycle=600,
        **dialect_args,
    )
    guard_checkin(engine)
    return engine


def guard_checkin(engine: Engine) -> None:
    """Keep a connection that died while checked out from costing the pool its slot.

    Connections that ran with another isolation level (the AUTOCOMMIT fast reads, the REPEATABLE
    READ snapshots) are reset when they are checked in. SQLAlchemy (2.0.x,
    ``_ConnectionRecord.checkin``) runs that reset before it gives the slot back, and does not
    catch what it raises: when the backend was terminated meanwhile, the slot is lost for good.
    Under fault suite (d) a pool of two leaked both and answered 503 to every request after.
    So a failed reset closes the dead connection instead of raising, and a closed connection is
    refused at checkout (``DisconnectionError``: the pool replaces it with a fresh one) — no
    round trip is added to a healthy checkout."""
    dialect = engine.dialect
    reset = dialect.reset_isolation_level

    def reset_or_close(dbapi_conn: Any) -> None:
        try:
            reset(dbapi_conn)
        except UNAVAILABLE as exc:
            log.warning("a pooled connection died while checked out (%s): closed", exc)
            _quietly(dbapi_conn.close)

    dialect.reset_isolation_level = reset_or_close  # type: ignore[method-assign,assignment]

    @event.listens_for(engine, "checkout")
    def _refuse_closed(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if getattr(dbapi_conn, "closed", 0):
            raise DisconnectionError("the pooled connection was closed")


def snapshot_sessionmaker(engine: Engine) -> sessionmaker:
    """Sessions for reads that see ONE snapshot across all their queries. Under PostgreSQL's
    default READ COMMITTED every statement sees what committed before it, so a view built from
    two queries could show a product both available and unavailable when an event handler
    committed in between; REPEATABLE READ (free for read-only work) fixes that. SQLite is left
    as it is (the development default)."""
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    return sessionmaker(bind=engine, expire_on_commit=False)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


class _PgInsertIgnore(PgInsert):
    """``INSERT … ON CONFLICT DO NOTHING`` (no conflict target) that SQLAlchemy can cache.

    SQLAlchemy 2.0's PostgreSQL and SQLite ``Insert`` classes and their ``OnConflictDoNothing``
    set no ``inherit_cache`` (no cache key), so every such statement is compiled afresh on
    every execution — measured in orders under the money-path load: 13% of the process' CPU in
    ``SQLCompiler.__init__``, the inbox claim of every event handler and the idempotency key of
    every request among them. A DO NOTHING without a target has nothing to key on but its
    class, so these subclasses are cacheable as they are."""

    inherit_cache = True

    def on_conflict_do_update(self, *args: Any, **kw: Any) -> Any:
        raise TypeError("insert_ignore is DO NOTHING only; use the dialect's insert()")


class _SqliteInsertIgnore(SqliteInsert):
    inherit_cache = True

    def on_conflict_do_update(self, *args: Any, **kw: Any) -> Any:
        raise TypeError("insert_ignore is DO NOTHING only; use the dialect's insert()")


class _PgDoNothing(PgOnConflictDoNothing):
    inherit_cache = True
    _traverse_internals: list = []  # no target, no condition: the class is the whole key


class _SqliteDoNothing(SqliteOnConflictDoNothing):
    inherit_cache = True
    _traverse_internals: list = []


_SHAPES: LRU[tuple, Any] = LRU(maxsize=512)  # write_rows' statements by shape


def write_rows(session: Session, *groups: tuple[Insert, list[dict]]) -> Any:
    """Insert rows into several tables in ONE round trip on PostgreSQL, the statement built
    once per shape and reused: each group is a bare insert (``insert(T)`` or
    ``insert_ignore(T, dialect)``) and its rows (dicts with the same keys); every row but the
    last becomes a data-modifying CTE of the last, with its values as bind parameters. Building
    a statement with ``.values(...)`` costs more CPU than sending it (measured in orders'
    checkout: values, coercions and the cache key ≈ 30% of the request); a statement kept per
    shape (tables, keys, row counts) has all of that done once. PostgreSQL runs every CTE and
    checks foreign keys at the end of the statement. The last row's result is returned (its
    ``rowcount`` says whether an insert_ignore row went in). Elsewhere (SQLite) each group is
    one executemany, and the result is the last group's."""
    groups = tuple((base, rows) for base, rows in groups if rows)
    if session.get_bind().dialect.name != "postgresql":
        result = None
        for base, rows in groups:
            result = session.execute(base, rows)
        return result
    shape = tuple(
        (type(base).__name__, base.table.name, tuple(rows[0]), len(rows)) for base, rows in groups
    )
    stmt = _SHAPES.get(shape)
    if stmt is None:
        single = [
            base.values(
                {k: bindparam(f"p{g}_{i}_{k}", type_=base.table.c[k].type) for k in rows[0]}
            )
            for g, (base, rows) in enumerate(groups)
            for i in range(len(rows))
        ]
        *first, last = single
        stmt = last.add_cte(*(w.cte(f"w{n}") for n, w in enumerate(first))) if first else last
        stmt = stmt.execution_options(**PREPARED)  # a hot shape: parsed once per connection
        _SHAPES.put(shape, stmt)
    params = {
        f"p{g}_{i}_{k}": v
        for g, (_, rows) in enumerate(groups)
        for i, row in enumerate(rows)
        for k, v in row.items()
    }
    return session.execute(stmt, params)


def as_arrays(rows: list[dict], keys: Iterable[str]) -> dict[str, list]:
    """``rows`` as one list per key: the bind parameters of a statement that reads its rows
    from arrays (``unnest(CAST(:key AS … []), …)``), many rows in one round trip on
    PostgreSQL (an executemany of an INSERT … ON CONFLICT without RETURNING is one statement
    per row for psycopg2: SQLAlchemy does not batch it)."""
    return {key: [row[key] for row in rows] for key in keys}


def dialect_insert(table: Any, dialect: str) -> Any:
    """``INSERT`` into ``table`` of the session's dialect (``session.get_bind().dialect.name``):
    PostgreSQL's or SQLite's, which both offer ``.on_conflict_do_update(...)`` and
    ``.excluded``. For ``ON CONFLICT DO NOTHING`` use ``insert_ignore`` / ``insert_or_ignore``
    (cacheable)."""
    return (PgInsert if dialect == "postgresql" else SqliteInsert)(table)


def insert_ignore(table: Any, dialect: str) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` into ``table`` for the session's dialect
    (``session.get_bind().dialect.name``), compiled once per shape (see ``_PgInsertIgnore``).
    Chain ``.values(...)`` and ``.returning(...)`` as with ``insert``."""
    stmt: Any
    if dialect == "postgresql":
        stmt = _PgInsertIgnore(table)
        stmt._post_values_clause = _PgDoNothing()
    else:
        stmt = _SqliteInsertIgnore(table)
        stmt._post_values_clause = _SqliteDoNothing()
    return cast(Insert, stmt)


def outbox_row(env: dict) -> dict:
    """The outbox row that carries the envelope ``env`` (``envelope``) until the relay
    publishes it."""
    return {
        "event_id": env["id"],
        "event_type": env["type"],
        "payload": json.dumps(env, ensure_ascii=False, default=str),
        "created_at": clock.real_now(),
        "attempts": 0,
    }


def envelope(event_type: str, data: dict, source: str, version: int = 1) -> dict:
    """The integration event as it travels: an id, a creation time, and the data."""
    return {
        "id": new_id(),
        "type": event_type,
        "version": version,
        "source": source,
        "occurred_at": clock.iso(clock.now()),
        "correlation_id": current_correlation_id(),
        "data": data,
    }


@functools.lru_cache(maxsize=256)
def insert_or_ignore(table: Table, dialect: str, returning: str | None = None) -> Insert:
    """A bare ``insert_ignore`` of ``table`` (``RETURNING returning`` when given), built once:
    execute it with a dict of column values (or a list of them) — the cheapest way to run the
    same INSERT … ON CONFLICT DO NOTHING again and again (no ``.values()`` per call)."""
    stmt = insert_ignore(table, dialect)
    return stmt.returning(table.c[returning]) if returning is not None else stmt


def _drop_if_dead(conn: Connection) -> None:
    """Invalidate an idle PostgreSQL connection that the server wrote to unasked (no LISTEN
    here): the FATAL of a backend terminated while it was checked out, or its closed socket —
    dropped now, not on the next request."""
    try:
        raw: Any = conn.connection.dbapi_connection
        if raw.closed or _has_input(raw.fileno()):
            raise ConnectionError("the server sent something unasked for")
    except Exception as exc:
        log.warning("an autocommit connection died while checked out (%s)", exc)
        conn.invalidate()


def _has_input(fd: int) -> bool:
    """Whether the socket ``fd`` has something to read, asked without waiting and without the
    event loop (the unpatched ``select``: one system call)."""
    readable, _, _ = _SELECT.select([fd], [], [], 0)
    return bool(readable)


_SELECT = eventlet.patcher.original("select")


class UnitOfWork:
    def __init__(self, db: "DatabaseHandle", session: Session, compensating: bool = False):
        self.db = db
        self.session = session
        self.emitted: list[dict] = []
        self.compensating = compensating
        self.last_announced = False  # commit_with_next: the COMMIT goes with the last statement

    def commit_with_next(self) -> None:
        """The next statement is this transaction's last: on PostgreSQL (``shared.pg``) it goes
        out with the COMMIT in one round trip, and the commit at the end of the unit of work
        sends nothing. For a hot write whose result nobody reads (the result is COMMIT's);
        nothing may run on the session after it. The deadline is checked now, before the
        statement: no commit starts too late (``refuse_late_commit``). Elsewhere (SQLite,
        ``DB_FOLD_BEGIN=0``) the statement runs as usual and the COMMIT follows on its own."""
        if not self.compensating:
            self.db.refuse_late_commit()
        raw = self.session.connection().connection.dbapi_connection
        self.last_announced = commit_with_next(raw)

    def once(self, fn: Callable[[], Any], step: str | None = None) -> Any:
        """``fn()`` once per idempotency key of this request (``shared.idempotency``): a key
        already recorded answers its stored outcome without running ``fn``; no key: ``fn()``.
        A request that commits in several transactions names each later ``step``."""
        from shared.idempotency import once, step_key

        return once(self.session, self.db.idempotency, step_key(self.db.idempotency_key, step), fn)

    def forget_key(self) -> None:
        """Free this request's key (its effect was undone: a retry must run afresh)."""
        from shared.idempotency import forget

        forget(self.session, self.db.idempotency, self.db.idempotency_key)

    def emit(self, event_type: str, data: "EventData", version: int = 1) -> dict:
        """Write ``event_type`` to the outbox in this transaction. ``data`` must be an instance
        of the event's contract model (``shared.contracts.events.EVENTS``): a typo'd type or a
        raw dict is a programming error, refused before anything is written."""
        stmt, rows = self.event_row(event_type, data, version)
        self.session.execute(stmt, rows[0])  # a bare INSERT with the values: compiled once
        return self.emitted[-1]

    def event_row(
        self, event_type: str, data: "EventData", version: int = 1
    ) -> tuple[Insert, list[dict]]:
        """``emit`` without the INSERT: the outbox row (and its bare INSERT) for a caller that
        writes it with its other rows in one statement (``write_rows``). It counts as emitted
        (the relay is woken after the commit); the caller must write it in this transaction."""
        from shared.contracts.events import contract_of

        expected = contract_of(event_type)
        if not isinstance(data, expected):
            raise TypeError(f"{event_type} takes a {expected.__name__}, got {type(data).__name__}")
        env = envelope(event_type, data.model_dump(mode="json"), self.db.service_name, version)
        self.emitted.append(env)
        return insert(self.db.outbox), [outbox_row(env)]

    def outcome_row(self, outcome: Any) -> tuple[Insert, list[dict]] | None:
        """This request's idempotency key recorded with ``outcome``, as a row to write with
        the transaction's others (``shared.idempotency.outcome_row``); None without a key."""
        from shared.idempotency import outcome_row

        key = self.db.idempotency_key
        return outcome_row(self.db.idempotency, key, outcome) if key else None

    def claim(self, event: dict, handler: str) -> bool:
        """Record that ``handler`` processed ``event``; False when it already had."""
        stmt = insert_or_ignore(self.db.inbox, self.session.get_bind().dialect.name)
        result = self.session.connection().execute(  # Core: no ORM layer
            stmt,
            {
                "event_id": event["id"],
                "handler": handler,
                "event_type": event.get("type", "?"),
                "processed_at": clock.real_now(),
            },
        )
        assert isinstance(result, CursorResult)  # an INSERT's result counts its rows
        return result.rowcount == 1

    def claim_all(self, events: list[dict], handler: str) -> list[dict]:
        """``claim`` for a batch of events (``shared.events.batch_event_handler``): the events
        ``handler`` had not processed yet, each once (a redelivery inside the batch too), in
        their order. On PostgreSQL one INSERT for the whole batch."""
        unique = _unique(events)
        if not unique:
            return []
        if self.session.get_bind().dialect.name != "postgresql":
            return [e for e in unique if self.claim(e, handler)]
        result = self.session.connection().execute(  # Core: no ORM layer
            claim_all_statement(self.db.inbox),
            {
                "ids": [e["id"] for e in unique],
                "types": [e.get("type", "?") for e in unique],
                "handler": handler,
                "processed_at": clock.real_now(),
            },
        )
        claimed = set(result.scalars())
        return [e for e in unique if e["id"] in claimed]


def _unique(events: list[dict]) -> list[dict]:
    """The first of each event id, in order."""
    first: dict[str, dict] = {}
    for e in events:
        first.setdefault(e["id"], e)
    return list(first.values())


@functools.cache
def claim_all_statement(inbox: Table) -> TextClause:
    """(PostgreSQL) ``claim`` of a batch in one INSERT: the ids it wrote."""
    return text(
        f"INSERT INTO {inbox.name} (event_id, handler, event_type, processed_at)"
        " SELECT e.id, :handler, e.type, :processed_at"
        " FROM unnest(CAST(:ids AS VARCHAR[]), CAST(:types AS VARCHAR[])) AS e (id, type)"
        " ON CONFLICT DO NOTHING RETURNING event_id"
    ).bindparams(bindparam("processed_at", type_=inbox.c.processed_at.type))


class DatabaseHandle:
    """What a worker gets: ``unit_of_work()`` and a few read helpers."""

    def __init__(self, provider: "Database", worker_ctx: Any = None):
        from shared.idempotency import TABLE, key_of
        from shared.rpc import deadline_of

        self.provider = provider
        self.worker_ctx = worker_ctx
        self.service_name = provider.container.service_name
        self.outbox = provider.metadata.tables["outbox"]
        self.inbox = provider.metadata.tables["inbox"]
        self.idempotency = provider.metadata.tables[TABLE]
        # read when the worker starts (inner calls rewrite the context while they run)
        self.idempotency_key = key_of(worker_ctx)
        self.deadline_at = deadline_of(getattr(worker_ctx, "data", None))
        self.engine = provider.engine

    def refuse_late_commit(self) -> None:
        """ServiceUnavailable ``deadline_exceeded`` when less than the commit margin
        (``XIAOPU_COMMIT_MARGIN_SECONDS``) is left of the caller's deadline: the caller is
        about to give up (503), so the effect must not happen behind its back."""
        from shared.rpc import commit_too_late

        commit_too_late(self.deadline_at, self.provider.commit_margin)

    @contextmanager
    def unit_of_work(self, compensating: bool = False) -> Iterator[UnitOfWork]:
        """Commit on a clean exit, roll back on an exception. A database that cannot be
        reached (or a pool with no free connection) is 503 ``database_unavailable``.
        ``compensating``: the transaction undoes what this request already wrote (a checkout
        whose stock could not be reserved); it commits even past the caller's deadline, since
        it makes the caller's 503 ("nothing happened") true rather than breaking it."""
        with unavailable_as_503(), self.provider.write_lock:
            session = self.provider.sessionmaker()
            uow = UnitOfWork(self, session, compensating)
            try:
                yield uow
                if not compensating and not uow.last_announced:  # checked before it went
                    self.refuse_late_commit()
                session.commit()
            except BaseException:
                _quietly(session.rollback)
                raise
            finally:
                _quietly(session.close)
        if uow.emitted:
            self.provider.notify_outbox()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session whose queries all see one consistent snapshot."""
        with unavailable_as_503():
            session = self.provider.read_sessionmaker()
            try:
                yield session
            finally:
                _quietly(session.rollback)
                _quietly(session.close)

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A plain autocommit connection for a hot single-statement read (no BEGIN/ROLLBACK
        round trips); failures are 503 ``database_unavailable`` like everywhere else.

        On PostgreSQL with ``shared.pg`` (the default) the AUTOCOMMIT level is an attribute
        of the connection: no BEGIN goes out, and putting it back costs nothing. Without it
        (``DB_FOLD_BEGIN=0``) the pooled psycopg2 connection is put in autocommit itself, at the
        isolation level psycopg2 calls default, and taken out again before it goes back:
        SQLAlchemy's ``isolation_level="AUTOCOMMIT"`` resets it to an explicit READ COMMITTED
        on return, after which psycopg2 sends ``SET default_transaction_isolation TO DEFAULT``
        on every later switch — a second round trip (and a server transaction) per read, seen
        with ``log_statement = all`` on orders' checkout. The default level is the server's
        (READ COMMITTED), what SQLAlchemy's reset named explicitly."""
        with unavailable_as_503():
            postgres = self.engine.dialect.name == "postgresql"
            if not postgres or folds_begin(self.engine):
                # shared.pg: AUTOCOMMIT is an attribute (no BEGIN is sent), reset for free
                with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                    try:
                        yield c
                    finally:
                        if postgres:
                            _drop_if_dead(c)
                return
            with self.engine.connect() as conn:
                raw: Any = conn.connection.dbapi_connection
                if raw.isolation_level is not None:
                    raw.isolation_level = None  # client-side: no transaction is open
                raw.autocommit = True
                try:
                    yield conn
                finally:
                    try:
                        conn.rollback()  # SQLAlchemy's own bookkeeping: nothing is sent
                        raw.autocommit = False
                    except Exception as exc:
                        log.warning("an autocommit connection died while checked out (%s)", exc)
                        conn.invalidate()
                    else:
                        _drop_if_dead(conn)

    def outbox_backlog(self) -> int:
        with self.read() as s:
            return s.execute(
                select(func.count())
                .select_from(self.outbox)
                .where(self.outbox.c.published_at.is_(None))
            ).scalar_one()

    def oldest_unpublished_age(self) -> float:
        """Seconds since the oldest unpublished outbox row was written (0: none waiting)."""
        with self.read() as s:
            oldest = s.execute(
                select(func.min(self.outbox.c.created_at)).where(
                    self.outbox.c.published_at.is_(None)
                )
            ).scalar_one()
        since = clock.as_utc(oldest)
        if since is None:
            return 0.0
        return max(0.0, (clock.real_now() - since).total_seconds())


def _quietly(fn) -> None:
    """Roll back / close a session whose connection may be gone: the error that matters is the
    one already on its way out (a dead connection is invalidated by SQLAlchemy either way)."""
    try:
        fn()
    except UNAVAILABLE:
        log.debug("cleaning up a session on a broken connection", exc_info=True)


class Database(DependencyProvider):
    """Engine + sessions for the service's own database (``DATABASE_URL`` in its config).

    It also runs the outbox relay for the service (see ``shared.outbox``).
    """

    def __init__(self, metadata: MetaData, relay: bool = True, **kwargs: Any):
        self.metadata = metadata
        self.relay_enabled = relay
        self.relay: OutboxRelay | None = None
        super().__init__(**kwargs)

    def setup(self):
        from shared.config import truthy

        url = self.container.config["DATABASE_URL"]
        config = self.container.config
        self.engine = make_engine(
            url,
            int(config.get("DB_POOL_SIZE", 10)),
            int(config.get("DB_POOL_OVERFLOW", 0)),
            float(config.get("DB_POOL_TIMEOUT", 3)),
            truthy(config.get("DB_FOLD_BEGIN", 1)),
            truthy(config.get("DB_PREPARE", 1)),
        )
        self.sessionmaker = sessionmaker(bind=self.engine, expire_on_commit=False)
        self.read_sessionmaker = snapshot_sessionmaker(self.engine)
        from shared.rpc import commit_margin

        self.commit_margin = commit_margin(config)
        # SQLite has one writer at a time, and its busy-wait blocks the whole eventlet hub (so
        # the green thread holding the write lock could never finish): writers take turns here.
        # PostgreSQL needs no such lock; its row locks are cooperative under eventlet.
        self.write_lock = (
            threading.RLock() if self.engine.dialect.name == "sqlite" else nullcontext()
        )
        if self.relay_enabled and truthy(self.container.config.get("OUTBOX_RELAY_ENABLED", 1)):
            from shared.outbox import OutboxRelay

            self.relay = OutboxRelay(
                self.container.service_name,
                self.engine,
                self.metadata.tables["outbox"],
                self.container.config,
                self.write_lock,
            )

    def start(self):
        if self.relay is not None:
            self.container.spawn_managed_thread(self.relay.run)

    def stop(self):
        if self.relay is not None:
            self.relay.stop()
        self.engine.dispose()

    def kill(self):
        self.stop()

    def notify_outbox(self) -> None:
        if self.relay is not None:
            self.relay.wake()

    def get_dependency(self, worker_ctx):
        return DatabaseHandle(self, worker_ctx)
