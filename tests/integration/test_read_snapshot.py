"""``db.read()`` sees one snapshot: a view built from several queries is never half old, half
new."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, select

from shared.db import make_engine, snapshot_sessionmaker

md = MetaData()
things = Table("things", md, Column("id", Integer, primary_key=True), Column("n", Integer))


@pytest.mark.postgres_only
def test_a_read_does_not_see_a_commit_made_between_its_queries(make_database):
    engine = make_engine(make_database("snapshot", migrate=False))
    try:
        md.create_all(engine)
        with engine.begin() as conn:
            conn.execute(things.insert().values(id=1, n=1))
        reader = snapshot_sessionmaker(engine)()
        try:
            assert reader.execute(select(things.c.n)).scalar_one() == 1
            with engine.begin() as conn:  # an event handler commits in between
                conn.execute(things.update().values(n=2))
            assert reader.execute(select(things.c.n)).scalar_one() == 1  # same snapshot
        finally:
            reader.rollback()
            reader.close()
        fresh = snapshot_sessionmaker(engine)()
        try:
            assert fresh.execute(select(things.c.n)).scalar_one() == 2
        finally:
            fresh.close()
    finally:
        engine.dispose()
