"""Every integration event has a contract (issue 11): each event type a service emits or consumes
is declared in ``shared.contracts.events.EVENTS``, and ``uow.emit`` takes only that contract's
model — a raw dict or another model is a programming error, refused before anything is written."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from shared.contracts.events import EVENTS, SupplierChanged, contract_of
from shared.db import UnitOfWork, service_metadata
from shared.testing import FakeUnitOfWork

ROOT = Path(__file__).resolve().parents[2]
# ``uow.emit("type", ...)``, ``emit(\n "type", ...)`` and helpers such as
# ``_emit_supplier(uow, "supplier_activated", s)``
EMITTED = re.compile(r"(?<![A-Za-z])emit\w*\(\s*(?:\w+\s*,\s*)?[\"']([a-z][a-z_]*)[\"']")
CONSUMED = re.compile(
    r"(?:event|broadcast)_handler\(\s*[\"'](\w+)[\"']\s*,\s*[\"']([a-z][a-z_]*)[\"']"
)


def service_sources() -> dict[str, str]:
    """The code of every service package (``services/<svc>/<svc>/**.py``), not its tests."""
    return {
        str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
        for path in sorted(ROOT.glob("services/*/*/**/*.py"))
        if "tests" not in path.relative_to(ROOT).parts
    }


def test_every_emitted_event_type_has_a_contract():
    emitted = {
        (event_type, where)
        for where, text in service_sources().items()
        for event_type in EMITTED.findall(text)
    }
    assert len({t for t, _ in emitted}) >= 10, f"the scan found too little: {sorted(emitted)}"
    missing = sorted((t, where) for t, where in emitted if t not in EVENTS)
    assert not missing, f"emitted without a contract in shared/contracts/events.py: {missing}"


def test_every_consumed_event_type_has_a_contract():
    consumed = {
        (source, event_type, where)
        for where, text in service_sources().items()
        for source, event_type in CONSUMED.findall(text)
    }
    assert len(consumed) >= 10, f"the scan found too little: {sorted(consumed)}"
    missing = sorted(c for c in consumed if c[1] not in EVENTS)
    assert not missing, f"consumed without a contract in shared/contracts/events.py: {missing}"


@pytest.fixture
def uow():
    """The real ``shared.db.UnitOfWork`` on an in-memory SQLite outbox."""
    metadata = service_metadata()
    engine = create_engine("sqlite://", poolclass=StaticPool)
    metadata.create_all(engine)
    session = Session(engine)
    db = SimpleNamespace(outbox=metadata.tables["outbox"], service_name="catalog")
    yield UnitOfWork(db, session)  # type: ignore[arg-type]
    session.close()
    engine.dispose()


def outbox_rows(uow) -> int:
    return uow.session.execute(select(func.count()).select_from(uow.db.outbox)).scalar_one()


def test_emit_writes_the_contract_model_to_the_outbox(uow):
    activated = SupplierChanged(supplier_id=1, name="阿花", status="active")
    env = uow.emit("supplier_activated", activated)
    assert env["type"] == "supplier_activated"
    assert env["source"] == "catalog"
    assert env["data"] == activated.model_dump(mode="json")
    assert env["data"]["supplier_id"] == 1
    assert outbox_rows(uow) == 1


def test_emit_refuses_a_raw_dict(uow):
    with pytest.raises(TypeError, match="supplier_activated takes a SupplierChanged, got dict"):
        uow.emit("supplier_activated", {"supplier_id": 1, "name": "阿花", "status": "active"})
    assert outbox_rows(uow) == 0


def test_emit_refuses_another_events_model(uow):
    with pytest.raises(TypeError, match="got SupplierChanged"):
        uow.emit("product_listed", SupplierChanged(supplier_id=1, name="x", status="active"))
    assert outbox_rows(uow) == 0


def test_emit_refuses_an_undeclared_event_type(uow):
    with pytest.raises(KeyError, match="no contract"):
        uow.emit("supplier_vanished", SupplierChanged(supplier_id=1, name="x", status="active"))
    assert outbox_rows(uow) == 0


def test_the_fake_unit_of_work_refuses_a_raw_dict_too():
    fake = FakeUnitOfWork(service_metadata())
    with pytest.raises(TypeError):
        fake.emit("supplier_activated", {"supplier_id": 1, "name": "阿花", "status": "active"})
    activated = SupplierChanged(supplier_id=1, name="阿花", status="active")
    fake.emit("supplier_activated", activated)
    assert fake.events == [("supplier_activated", activated.model_dump(mode="json"))]


def test_every_contract_is_an_event_data_model():
    for event_type in EVENTS:
        assert contract_of(event_type).model_fields, event_type
