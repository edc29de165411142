"""One effect per request (issue 12), on the real RabbitMQ and database:

- ``uow.once`` on PostgreSQL: a concurrent twin with the same key waits for the first one's
  transaction and answers its outcome (or runs, when the first rolled back);
- ``shared.rpc.rpc`` refuses a request whose deadline has passed before running anything, with
  a proper error reply (the caller is not left waiting);
- the unit of work refuses to commit when less than the commit margin is left;
- the key travels from the gateway to the service that owns the effect, where it is durable:
  the same key after the gateway forgot it (another gateway, a restart) changes nothing.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import eventlet
import pytest
import requests
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from shared.db import UnitOfWork, make_engine
from shared.errors import ServiceUnavailable
from shared.idempotency import IDEM_KEY, TABLE
from shared.rpc import DEADLINE_KEY, rpc

SUPPLIER = {
    "name": "幂等供应商二",
    "registered_capital_fen": 200_000_000,
    "general_taxpayer": True,
    "brand_authorization_levels": 1,
    "contact": {"phone": "13800002222", "wechat": "idem-two", "email": "idem2@example.com"},
}

RAN: list[str] = []


class Probe:
    name = "idem_probe"

    @rpc
    def touch(self, tag):
        RAN.append(tag)
        return tag


def _uow(session: Session, key: str | None) -> UnitOfWork:
    from catalog.models import Base

    db = SimpleNamespace(idempotency=Base.metadata.tables[TABLE], idempotency_key=key)
    return UnitOfWork(db, session)  # type: ignore[arg-type]


@pytest.mark.postgres_only
def test_a_concurrent_twin_waits_for_the_first_and_answers_its_outcome(make_database):
    engine = make_engine(make_database("catalog"))
    key = "t" * 64
    ran: list[str] = []
    inside = eventlet.event.Event()
    release = eventlet.event.Event()

    def first():
        with Session(engine) as s, s.begin():

            def fn():
                ran.append("first")
                inside.send(True)
                release.wait()  # still uncommitted while the twin arrives
                return {"who": "first"}

            return _uow(s, key).once(fn)

    def twin():
        with Session(engine) as s, s.begin():
            return _uow(s, key).once(lambda: ran.append("twin") or {"who": "twin"})

    try:
        a = eventlet.spawn(first)
        inside.wait()
        b = eventlet.spawn(twin)
        eventlet.sleep(0.3)  # give the twin time to reach (and block on) its INSERT
        assert ran == ["first"], "the twin did not wait for the uncommitted first"
        release.send(True)
        assert a.wait() == {"who": "first"}
        assert b.wait() == {"who": "first"}  # answered the first one's outcome ...
        assert ran == ["first"]  # ... without running
    finally:
        engine.dispose()


@pytest.mark.postgres_only
def test_a_twin_runs_when_the_first_rolled_back(make_database):
    engine = make_engine(make_database("catalog"))
    key = "r" * 64
    try:
        with Session(engine) as s:
            with pytest.raises(ValueError), s.begin():
                _uow(s, key).once(lambda: (_ for _ in ()).throw(ValueError("refused")))
        with Session(engine) as s, s.begin():
            assert _uow(s, key).once(lambda: {"who": "retry"}) == {"who": "retry"}
        with Session(engine) as s:
            rows = s.execute(text("SELECT outcome FROM idempotency_keys")).scalars().all()
        assert rows == ['{"who": "retry"}']
    finally:
        engine.dispose()


def test_a_request_whose_deadline_passed_never_runs(container_factory, rabbit_config):
    RAN.clear()
    container_factory(Probe, {"AMQP_URI": rabbit_config["AMQP_URI"]}).start()
    config = {"AMQP_URI": rabbit_config["AMQP_URI"]}
    with ClusterRpcProxy(config, context_data={DEADLINE_KEY: time.time() - 1}, timeout=10) as c:
        with pytest.raises(ServiceUnavailable) as refused:
            c.idem_probe.touch("late")  # an error reply, at once: not a timeout
    assert refused.value.code == "deadline_exceeded"
    with ClusterRpcProxy(config, context_data={DEADLINE_KEY: time.time() + 10}, timeout=10) as c:
        assert c.idem_probe.touch("in time") == "in time"
    with ClusterRpcProxy(config, timeout=10) as c:  # no deadline at all: runs
        assert c.idem_probe.touch("no deadline") == "no deadline"
    assert RAN == ["in time", "no deadline"]


def _suppliers(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM suppliers")).scalar_one()
    finally:
        engine.dispose()


def test_the_unit_of_work_refuses_to_commit_with_less_than_the_margin_left(
    start_service, make_database, rabbit_config
):
    url = make_database("catalog")
    start_service("catalog", database_url=url, XIAOPU_COMMIT_MARGIN_SECONDS=2)
    config = {"AMQP_URI": rabbit_config["AMQP_URI"]}
    late = {DEADLINE_KEY: time.time() + 1.0}  # in time to start, too late to commit
    with ClusterRpcProxy(config, context_data=late, timeout=10) as c:
        with pytest.raises(ServiceUnavailable) as refused:
            c.catalog.register_supplier(SUPPLIER)
    assert refused.value.code == "deadline_exceeded"
    assert _suppliers(url) == 0  # rolled back: the 503 means it did not happen
    in_time = {DEADLINE_KEY: time.time() + 10}
    with ClusterRpcProxy(config, context_data=in_time, timeout=10) as c:
        assert c.catalog.register_supplier(SUPPLIER)["id"]
    assert _suppliers(url) == 1


def test_a_key_sent_twice_to_the_service_registers_one_supplier(
    start_service, make_database, rabbit_config
):
    url = make_database("catalog")
    start_service("catalog", database_url=url)
    config = {"AMQP_URI": rabbit_config["AMQP_URI"]}
    keyed = {IDEM_KEY: "k" * 64}
    with ClusterRpcProxy(config, context_data=keyed, timeout=10) as c:
        first = c.catalog.register_supplier(SUPPLIER)
        again = c.catalog.register_supplier(SUPPLIER)  # a retry, a redelivery
    assert again == first
    assert _suppliers(url) == 1
    with ClusterRpcProxy(config, context_data={IDEM_KEY: "l" * 64}, timeout=10) as c:
        other = c.catalog.register_supplier(SUPPLIER)  # a new key is a new registration
    assert other["id"] != first["id"] and _suppliers(url) == 2


def test_the_gateway_key_is_durable_beyond_its_own_cache(gateway, start_service, make_database):
    from gateway.api import IDEMPOTENCY

    url = make_database("catalog")
    start_service("catalog", database_url=url)

    def register(key: str | None) -> requests.Response:
        headers = {} if key is None else {"Idempotency-Key": key}
        return requests.post(
            f"{gateway.url}/api/v1/suppliers", json=SUPPLIER, headers=headers, timeout=10
        )

    first = register("sup-1")
    assert first.status_code == 201, first.text
    IDEMPOTENCY._done.clear()  # another gateway, or this one restarted: it knows nothing
    again = register("sup-1")
    assert again.status_code == 201, again.text
    assert "Idempotent-Replayed" not in again.headers  # answered by catalog, not the cache
    assert again.json()["id"] == first.json()["id"]
    assert _suppliers(url) == 1

    assert register(None).status_code == 201  # no key: one per request
    assert register(None).status_code == 201
    assert _suppliers(url) == 3

    for bad in ("", "x" * 201, "caf\xe9"):  # what requests can send (no blanks, no tabs)
        refused = register(bad)
        assert refused.status_code == 400, (bad, refused.text)
        error = refused.json()["error"]
        assert error["code"] == "bad_request" and "Idempotency-Key" in error["message"]
        assert error["details"] == {"header": "Idempotency-Key"}
    assert _suppliers(url) == 3


def test_the_idempotency_table_is_in_every_service(make_database):
    from shared.config import SERVICES

    for service in SERVICES:
        engine = make_engine(make_database(service))
        try:
            with Session(engine) as s:
                assert s.execute(select(func.count()).select_from(text(TABLE))).scalar_one() == 0
        finally:
            engine.dispose()
