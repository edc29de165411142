"""``uow.once`` (shared/idempotency.py): one effect per idempotency key, in the transaction of
the effect — on the handlers' FakeUnitOfWork and on the real ``shared.db.UnitOfWork`` (SQLite);
the PostgreSQL twin-wait is in tests/integration/test_idempotency_deadlines.py. Also the
commit margin and the gateway's key rules, which need no server."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, func, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from shared.db import UnitOfWork, service_metadata
from shared.errors import ServiceUnavailable
from shared.idempotency import TABLE, client_key_problem, derive, scoped_key, step_key
from shared.rpc import commit_too_late
from shared.testing import FakeUnitOfWork


def _metadata() -> MetaData:
    metadata = service_metadata()
    Table("things", metadata, Column("id", Integer, primary_key=True), Column("name", String(20)))
    return metadata


def _count(session: Session, metadata: MetaData, table: str) -> int:
    return session.execute(select(func.count()).select_from(metadata.tables[table])).scalar_one()


class Counter:
    """A command that inserts a row and answers something JSON can carry only roughly."""

    def __init__(self, uow, metadata):
        self.uow, self.metadata, self.runs = uow, metadata, 0

    def __call__(self):
        self.runs += 1
        self.uow.session.execute(self.metadata.tables["things"].insert().values(name="x"))
        return {"run": self.runs, "at": datetime(2026, 1, 2, 3, 4, tzinfo=UTC), "ids": (1, 2)}


def real_uow(metadata: MetaData, key: str | None) -> tuple[UnitOfWork, Session]:
    engine = create_engine("sqlite://", poolclass=StaticPool)
    metadata.create_all(engine)
    session = Session(engine)
    db = SimpleNamespace(idempotency=metadata.tables[TABLE], idempotency_key=key)
    return UnitOfWork(db, session), session  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["fake", "real"])
def test_a_key_runs_once_and_every_repeat_answers_the_first_outcome(kind):
    metadata = _metadata()
    if kind == "fake":
        uow = FakeUnitOfWork(metadata)
        uow.idempotency_key = "k" * 64
        session = uow.session
    else:
        uow, session = real_uow(metadata, "k" * 64)
    command = Counter(uow, metadata)
    first = uow.once(command)
    again = uow.once(command)
    assert command.runs == 1
    assert _count(session, metadata, "things") == 1
    assert first == again  # the very answer the caller got, JSON round-tripped both times
    assert first["run"] == 1 and first["ids"] == [1, 2]
    assert first["at"] == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert _count(session, metadata, TABLE) == 1


@pytest.mark.parametrize("kind", ["fake", "real"])
def test_without_a_key_the_command_simply_runs(kind):
    metadata = _metadata()
    if kind == "fake":
        uow = FakeUnitOfWork(metadata)
        session = uow.session
    else:
        uow, session = real_uow(metadata, None)
    command = Counter(uow, metadata)
    uow.once(command)
    uow.once(command)
    assert command.runs == 2
    assert _count(session, metadata, TABLE) == 0


def test_a_failed_command_records_nothing_so_the_retry_runs_again():
    metadata = _metadata()
    uow, session = real_uow(metadata, "f" * 64)

    def fails():
        session.execute(metadata.tables["things"].insert().values(name="half"))
        raise ValueError("refused")

    with pytest.raises(ValueError):
        uow.once(fails)
    session.rollback()  # what the real unit of work does with the exception
    assert _count(session, metadata, TABLE) == 0
    command = Counter(uow, metadata)
    assert uow.once(command)["run"] == 1
    assert command.runs == 1 and _count(session, metadata, "things") == 1


def test_steps_of_one_request_are_recorded_apart():
    metadata = _metadata()
    uow, session = real_uow(metadata, "s" * 64)
    assert uow.once(lambda: "opened") == "opened"
    assert uow.once(lambda: "finished", step="finish") == "finished"
    assert uow.once(lambda: "again", step="finish") == "finished"
    assert uow.once(lambda: "again") == "opened"
    assert step_key("s" * 64, "finish") == derive("s" * 64, "finish") != "s" * 64
    assert step_key(None, "finish") is None


def test_a_forgotten_key_runs_afresh():
    metadata = _metadata()
    uow = FakeUnitOfWork(metadata)
    uow.idempotency_key = "g" * 64
    assert uow.once(lambda: 1) == 1
    uow.forget_key()
    assert uow.once(lambda: 2) == 2


def test_the_scoped_key_separates_callers_methods_and_paths():
    base = scoped_key("member", "7", "POST", "/api/v1/orders", "abc")
    assert len(base) == 64
    assert base == scoped_key("member", "7", "post", "/api/v1/orders", "abc")
    others = {
        scoped_key("member", "8", "POST", "/api/v1/orders", "abc"),
        scoped_key("supplier", "7", "POST", "/api/v1/orders", "abc"),
        scoped_key("member", "7", "PUT", "/api/v1/orders", "abc"),
        scoped_key("member", "7", "POST", "/api/v1/orders/1/pay", "abc"),
        scoped_key("member", "7", "POST", "/api/v1/orders", "abd"),
    }
    assert base not in others and len(others) == 5


@pytest.mark.parametrize(
    ("value", "refused"),
    [("", True), ("   ", True), ("x" * 201, True), ("a\tb", True), ("ключ", True)],
)
def test_client_keys_that_are_refused(value, refused):
    assert (client_key_problem(value) is not None) is refused


def test_client_keys_that_are_accepted():
    assert client_key_problem("x" * 200) is None
    assert client_key_problem("order-2026-01-02 #1") is None


def test_the_commit_margin():
    commit_too_late(None, 0.5)  # no deadline (a timer, an event): always in time
    commit_too_late(time.time() + 5, 0.5)
    with pytest.raises(ServiceUnavailable) as late:
        commit_too_late(time.time() + 0.3, 0.5)
    assert late.value.code == "deadline_exceeded" and late.value.status == 503
    with pytest.raises(ServiceUnavailable):
        commit_too_late(time.time() - 1, 0.5)
