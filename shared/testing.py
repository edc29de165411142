"""Helpers for the test suites of every service (nameko ships ``nameko.testing`` the same way)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from sqlalchemy import MetaData

    from shared.contracts.events import EventData

T = TypeVar("T")


def wait_for(fn: Callable[[], T], timeout: float = 20.0, interval: float = 0.1) -> T:
    """Call ``fn`` until it returns something truthy and return that; fail the test with the
    last value after ``timeout`` seconds. For effects that arrive asynchronously (events,
    relays, timers): a deadline, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        time.sleep(interval)


def queue_depths(vhost: str) -> dict[str, tuple[int, int]]:
    """``{queue: (ready, unacknowledged)}`` of every queue in ``vhost``, read from the broker
    itself (``rabbitmqctl``), not from the management statistics, which lag by seconds."""
    import subprocess

    out = subprocess.run(
        [
            "rabbitmqctl",
            "list_queues",
            "-q",
            "--no-table-headers",
            "-p",
            vhost,
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    depths: dict[str, tuple[int, int]] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            depths[parts[0]] = (int(parts[1]), int(parts[2]))
    return depths


def wait_drained(
    vhost: str,
    backlogs: Callable[[], int] = lambda: 0,
    timeout: float = 30.0,
    ignore: Callable[[str], bool] = lambda q: q.endswith((".dead", ".retry")),
) -> None:
    """Wait until nothing is left to arrive: ``backlogs()`` (e.g. the summed unpublished outbox
    rows of the producing services) is 0 and every queue of ``vhost`` is empty with nothing
    unacknowledged, twice in a row. Use it instead of a sleep before asserting that something
    did NOT happen (a second effect, a duplicate event): it proves absence, a sleep only hopes.
    RPC reply queues are ignored by the caller's ``ignore`` too when needed."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while True:
        busy = {q: d for q, d in queue_depths(vhost).items() if not ignore(q) and d != (0, 0)}
        pending = backlogs()
        quiet = quiet + 1 if not busy and not pending else 0
        if quiet >= 2:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not drained within {timeout}s: queues {busy}, backlog {pending}")
        time.sleep(0.1)


class FakeUnitOfWork:
    """A unit of work for handler unit tests (cosmicpython's FakeUnitOfWork): a real SQLAlchemy
    session on a private in-memory SQLite database built from the service's models — no
    database server, no broker (or, given ``url``, on that empty database: a handler's
    PostgreSQL branch). ``emit`` validates against the event contract like the real
    one and records ``(event_type, data)`` in ``events``; ``claim`` remembers in memory;
    ``committed`` stays False because handlers never commit (the entrypoint's unit of work
    does)::

        uow = FakeUnitOfWork(Base.metadata)
        handlers.suppliers.register(uow, rules, command)
        assert [t for t, _ in uow.events] == ["supplier_activated"]
    """

    def __init__(self, metadata: MetaData, url: str | None = None) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.orm import Session
        from sqlalchemy.pool import StaticPool

        if url is None:
            self.engine = create_engine(
                "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:  # a handler's PostgreSQL branch: an empty database of the caller's
            from shared.db import make_engine

            self.engine = make_engine(url, pool_size=1)
        metadata.create_all(self.engine)
        self.session = Session(self.engine, expire_on_commit=False)
        self.events: list[tuple[str, dict]] = []
        self.claimed: set[tuple[str, str]] = set()
        self.committed = False
        self.last_announced = False
        self.metadata = metadata
        self.idempotency_key: str | None = None  # set it to run ``once`` as a keyed request

    def close(self) -> None:
        self.session.close()
        self.engine.dispose()

    def commit_with_next(self) -> None:
        """``shared.db.UnitOfWork.commit_with_next``: the fake never commits, so nothing is
        folded; remembered in ``last_announced`` for a test that wants to see it."""
        self.last_announced = True

    def once(self, fn: Callable[[], Any], step: str | None = None) -> Any:
        """``shared.db.UnitOfWork.once`` on this session, with ``idempotency_key`` as the key."""
        from shared.idempotency import TABLE, once, step_key

        table = self.metadata.tables[TABLE]
        return once(self.session, table, step_key(self.idempotency_key, step), fn)

    def forget_key(self) -> None:
        from shared.idempotency import TABLE, forget

        forget(self.session, self.metadata.tables[TABLE], self.idempotency_key)

    def emit(self, event_type: str, data: EventData, version: int = 1) -> dict:
        from shared.contracts.events import contract_of

        expected = contract_of(event_type)
        if not isinstance(data, expected):
            raise TypeError(f"{event_type} takes a {expected.__name__}, got {type(data).__name__}")
        dumped = data.model_dump(mode="json")
        self.events.append((event_type, dumped))
        return {"type": event_type, "data": dumped}

    def event_row(
        self, event_type: str, data: EventData, version: int = 1
    ) -> tuple[Any, list[dict]]:
        """``shared.db.UnitOfWork.event_row``: recorded in ``events`` like ``emit``; the row
        goes to the service's outbox table (written by the handler with its other rows)."""
        from sqlalchemy import insert

        from shared.db import envelope, outbox_row

        dumped = self.emit(event_type, data, version)["data"]
        env = envelope(event_type, dumped, "test", version)
        return insert(self.metadata.tables["outbox"]), [outbox_row(env)]

    def outcome_row(self, outcome: Any) -> tuple[Any, list[dict]] | None:
        """``shared.db.UnitOfWork.outcome_row`` with ``idempotency_key`` as the key."""
        from shared.idempotency import TABLE, outcome_row

        key = self.idempotency_key
        return outcome_row(self.metadata.tables[TABLE], key, outcome) if key else None

    def claim(self, event: dict, handler: str) -> bool:
        key = (str(event["id"]), handler)
        if key in self.claimed:
            return False
        self.claimed.add(key)
        return True

    def claim_all(self, events: list[dict], handler: str) -> list[dict]:
        return [e for e in events if self.claim(e, handler)]

    def commit(self) -> None:
        """Only for tests that want to look at the rows as another transaction would."""
        self.session.commit()
        self.committed = True


def queries_sent(engine: Any) -> list[str]:
    """Every query the PostgreSQL connections ``engine`` opens from now on send to the server,
    in order (a psycopg2 cursor that writes each down): what a round-trip count asserts on.
    The connections already in the pool are not counted (``engine.dispose()`` first)."""
    import psycopg2.extensions
    from sqlalchemy import event

    sent: list[str] = []

    class Counting(psycopg2.extensions.cursor):
        def execute(self, query: Any, vars: Any = None) -> Any:  # noqa: A002 (psycopg2's name)
            sent.append(query if isinstance(query, str) else query.decode())
            return super().execute(query, vars)

    @event.listens_for(engine, "connect")
    def _count(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.cursor_factory = Counting

    return sent
