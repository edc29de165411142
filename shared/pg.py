"""PostgreSQL through psycopg2 with each transaction's ``BEGIN`` sent with its first statement.

psycopg2 opens a transaction by sending ``BEGIN`` on its own before the first statement: one
more round trip per transaction — in the client a send, a green switch and a receive, in the
server a command of its own. Measured under the money-path load (``benchmarks/``): 3.4 of them
per paid order, and in orders' checkout and payment one round trip in four.

``FoldedBeginDialect`` keeps the psycopg2 connection in autocommit for its whole life and
drives the transaction itself, as SQLAlchemy's dialect hooks allow:

- ``do_begin`` sends nothing; it remembers the ``BEGIN`` (with the isolation level the
  connection is set to — ``REPEATABLE READ`` for snapshot reads) for the first statement;
- the first statement goes out as ``BEGIN ISOLATION LEVEL …;<statement>`` in the same query
  (psycopg2's simple query protocol: the result is the statement's, its rowcount too; an error
  in it leaves the transaction open and failed, as it would have been);
- ``do_commit`` / ``do_rollback`` send ``COMMIT`` / ``ROLLBACK`` only when a ``BEGIN`` went
  out: a transaction that executed nothing costs nothing;
- a statement announced as the transaction's last (``commit_with_next``; in a unit of work
  ``UnitOfWork.commit_with_next``) goes out as ``<statement>;COMMIT``: the COMMIT travels with
  it, and ``do_commit`` then sends nothing. Its result is COMMIT's (no rows, no rowcount), so
  only a write whose result nobody reads can be announced. If the statement fails, PostgreSQL
  skips the COMMIT and the transaction stays open and failed, rolled back as any other; any
  statement after the COMMIT went out and before ``do_commit`` / ``do_rollback`` is a
  programming error (it would run outside the transaction) and is refused;
- the ``AUTOCOMMIT`` isolation level (``DatabaseHandle.autocommit``'s single-statement reads)
  sends no ``BEGIN`` at all, and switching to it or back is a Python attribute, no round trip.

A hot statement can also skip the server's parse and plan: one executed with the execution
option ``prepared=True`` (``PREPARED``) is sent once per connection as ``PREPARE xpN AS …`` with
its first execution (``$1 …`` for its parameters, whose types the server infers from where they
stand), and from then on as ``EXECUTE xpN(…)`` with the values — measured on orders' checkout
read, 30 µs of PostgreSQL's CPU less per execution (77–83 → 47–50 µs). A statement is known
only once an execution of it succeeded; one that failed is prepared again under a fresh name
next time (a failed transaction may have kept the first). The names live with the connection.
``DB_PREPARE=0`` turns it off (required behind a connection pooler that moves sessions
between server connections: pgbouncer in transaction mode does not carry SQL PREPAREs).

Everything else is psycopg2 and SQLAlchemy as they were: savepoints are statements (they fold
like any other), a failed ``COMMIT`` is raised through SQLAlchemy's error handling (its
``do_commit`` is the one calling), a connection's state lives on the connection object
(``FoldedConnection``). ``DB_FOLD_BEGIN=0`` turns it off (the plain psycopg2 dialect).
"""

from __future__ import annotations

import itertools
import re
from typing import Any, cast

import psycopg2.extensions
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2
from sqlalchemy.engine.interfaces import IsolationLevel

# the statement that opens a transaction at each isolation level SQLAlchemy names
BEGIN = {
    "READ COMMITTED": "BEGIN ISOLATION LEVEL READ COMMITTED",
    "READ UNCOMMITTED": "BEGIN ISOLATION LEVEL READ UNCOMMITTED",
    "REPEATABLE READ": "BEGIN ISOLATION LEVEL REPEATABLE READ",
    "SERIALIZABLE": "BEGIN ISOLATION LEVEL SERIALIZABLE",
}
AUTOCOMMIT = "AUTOCOMMIT"
PREPARED = {"prepared": True}  # a hot statement's execution options: prepared once per connection
_PARAM = re.compile(r"%\(([^)]+)\)s")  # a pyformat parameter, as SQLAlchemy writes them
_NAMES = itertools.count(1)  # prepared statements' names, unique in the process


class FoldedConnection(psycopg2.extensions.connection):
    """A psycopg2 connection that is always in autocommit; ``FoldedBeginDialect`` keeps the
    transaction's state here."""

    level: str | None = None  # the isolation level set (None: the server's default)
    pending: str | None = None  # the BEGIN waiting for the transaction's first statement
    open: bool = False  # a BEGIN went out and no COMMIT or ROLLBACK since
    commit_next: bool = False  # the next statement is the transaction's last: it carries COMMIT
    ended: bool = False  # the COMMIT went out with a statement; do_commit has not come yet

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepared: dict[str, str] = {}  # statement -> its EXECUTE (parameters as pyformat)

    def begin_statement(self) -> str | None:
        if self.level == AUTOCOMMIT:
            return None
        return BEGIN.get(self.level or "", "BEGIN")


def _raw(connection: Any) -> FoldedConnection:
    """The psycopg2 connection behind what SQLAlchemy hands a dialect hook (a pool's proxied
    connection, or the DBAPI connection itself)."""
    return getattr(connection, "dbapi_connection", None) or connection


class FoldedBeginDialect(PGDialect_psycopg2):
    """psycopg2's dialect with the transaction's BEGIN folded into its first statement
    (module docstring). Registered as ``postgresql+xiaopu_psycopg2`` (``shared.db``)."""

    supports_statement_cache = True
    folds_begin = True  # ``shared.db.folds_begin``

    def __init__(self, prepare: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prepares = prepare  # honour the ``prepared`` execution option (``DB_PREPARE``)

    def create_connect_args(self, url: Any) -> Any:
        args, opts = super().create_connect_args(url)
        opts["connection_factory"] = FoldedConnection
        return args, opts

    def on_connect(self) -> Any:
        inner = super().on_connect()

        def on_connect(conn: FoldedConnection) -> None:
            conn.autocommit = True  # before anything: the registrations below run queries
            if inner is not None:
                inner(conn)

        return on_connect

    # -- isolation: a Python attribute, sent with the next BEGIN -------------------------------
    def set_isolation_level(self, dbapi_connection: Any, level: IsolationLevel) -> None:
        if level != AUTOCOMMIT and level not in BEGIN:
            raise ValueError(f"unknown isolation level {level!r}")
        _raw(dbapi_connection).level = level

    def get_isolation_level(self, dbapi_connection: Any) -> IsolationLevel:
        conn = _raw(dbapi_connection)
        if conn.level is None:  # the server's default, asked once per connection
            conn.level = super().get_isolation_level(conn)
        return cast(IsolationLevel, conn.level)

    def detect_autocommit_setting(self, dbapi_connection: Any) -> bool:
        return _raw(dbapi_connection).level == AUTOCOMMIT

    # -- the transaction -------------------------------------------------------------------
    def do_begin(self, dbapi_connection: Any) -> None:
        conn = _raw(dbapi_connection)
        conn.pending = conn.begin_statement()
        conn.commit_next = conn.ended = False

    def do_commit(self, dbapi_connection: Any) -> None:
        self._end(_raw(dbapi_connection), "COMMIT")

    def do_rollback(self, dbapi_connection: Any) -> None:
        self._end(_raw(dbapi_connection), "ROLLBACK")

    @staticmethod
    def _end(conn: FoldedConnection, command: str) -> None:
        conn.pending = None
        conn.commit_next = conn.ended = False
        if not conn.open:
            return  # no BEGIN went out: nothing to end
        conn.open = False
        with conn.cursor() as cursor:
            cursor.execute(command)

    # -- statements: the first of a transaction carries its BEGIN, the last its COMMIT -------
    @staticmethod
    def _refuse_after_commit(conn: FoldedConnection) -> None:
        if conn.ended:
            raise RuntimeError(
                "a statement after the transaction's COMMIT went out with its last one"
                " (commit_with_next): it would run outside the transaction"
            )

    def _run(self, cursor: Any, statement: str, *parameters: Any) -> None:
        conn = cursor.connection
        self._refuse_after_commit(conn)
        begin = conn.pending
        if begin is not None:
            conn.pending, conn.open = None, True  # open even if the query fails: ROLLBACK it
            statement = f"{begin};{statement}"
        ends, conn.commit_next = conn.commit_next and conn.open, False
        if ends:
            statement = f"{statement};COMMIT"
        cursor.execute(statement, *parameters)
        if ends:  # it ran, and so did the COMMIT (a failure skips it: the transaction stays open)
            conn.open, conn.ended = False, True

    def do_execute(self, cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
        if (
            self.prepares
            and context is not None
            and isinstance(parameters, dict)
            and context.execution_options.get("prepared")
        ):
            self._execute_prepared(cursor, statement, parameters)
            return
        self._run(cursor, statement, parameters)

    def _execute_prepared(self, cursor: Any, statement: str, parameters: dict) -> None:
        known = cursor.connection.prepared
        execute = known.get(statement)
        if execute is not None:
            self._run(cursor, execute, parameters)
            return
        order: dict[str, int] = {}

        def positional(m: re.Match) -> str:
            return f"${order.setdefault(m.group(1), len(order) + 1)}"

        body = _PARAM.sub(positional, statement)
        name = f"xp{next(_NAMES)}"
        args = ", ".join(f"%({key})s" for key in order)
        execute = f"EXECUTE {name}({args})" if order else f"EXECUTE {name}"
        self._run(cursor, f"PREPARE {name} AS {body};{execute}", parameters)
        known[statement] = execute  # it ran: prepared on this connection from now on

    def do_execute_no_params(self, cursor: Any, statement: str, context: Any = None) -> None:
        self._run(cursor, statement)

    def do_executemany(
        self, cursor: Any, statement: str, parameters: Any, context: Any = None
    ) -> None:
        conn = cursor.connection
        self._refuse_after_commit(conn)
        conn.commit_next = False  # a batch runs as many queries: its COMMIT goes alone
        if conn.pending is not None:  # the batch runs as many queries: BEGIN goes alone
            begin, conn.pending, conn.open = conn.pending, None, True
            cursor.execute(begin)
        super().do_executemany(cursor, statement, parameters, context)


def commit_with_next(dbapi_connection: Any) -> bool:
    """Announce the open transaction's next statement as its last: it goes out with the COMMIT
    (module docstring). False (nothing announced) for a connection of another dialect, whose
    COMMIT goes out on its own as usual."""
    conn = _raw(dbapi_connection)
    if not isinstance(conn, FoldedConnection):
        return False
    conn.commit_next = True
    return True


dialect = FoldedBeginDialect
