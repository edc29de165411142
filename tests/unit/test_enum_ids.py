"""Random integer ids (shared.ids): the whole positive int32 range, drawn again on a collision."""

from __future__ import annotations

import pytest
from sqlalchemy import Integer, MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared import ids
from shared.testing import FakeUnitOfWork
from shared.validation import not_found

pytestmark = pytest.mark.unit


class Base(DeclarativeBase):
    metadata = MetaData()


class Thing(Base):
    __tablename__ = "things"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


def test_random_ids_are_positive_int32_and_not_a_sequence():
    drawn = [ids.random_int_id() for _ in range(1000)]
    assert all(1 <= i <= ids.MAX_INT_ID == 2**31 - 1 for i in drawn)
    assert len(set(drawn)) == 1000
    assert max(drawn) - min(drawn) > 2**30  # spread over the range, not counting up


def test_a_taken_id_is_drawn_again(monkeypatch):
    uow = FakeUnitOfWork(Base.metadata)
    uow.session.add(Thing(id=7))
    uow.session.flush()
    draws = iter([7, 7, 8])
    monkeypatch.setattr(ids, "random_int_id", lambda: next(draws))
    assert ids.unused_int_id(uow.session, Thing) == 8
    monkeypatch.setattr(ids, "random_int_id", lambda: 7)
    with pytest.raises(RuntimeError):
        ids.unused_int_id(uow.session, Thing, attempts=3)


def test_not_found_is_one_shape_for_missing_and_not_yours():
    assert not_found("order", 12).envelope() == {
        "error": {"code": "order_not_found", "message": "order 12 not found", "details": None}
    }
