"""``shared.db.insert_ignore``: INSERT … ON CONFLICT DO NOTHING that SQLAlchemy caches.

The dialects' own ``insert(...).on_conflict_do_nothing()`` has no cache key in SQLAlchemy 2.0,
so it is compiled on every execution (the inbox claim of every event, the idempotency key of
every request); these statements key on their shape like any plain INSERT."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from shared.db import insert_ignore

pytestmark = pytest.mark.unit

META = MetaData()
SEEN = Table("seen", META, Column("key", String(20), primary_key=True), Column("n", Integer))


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_statements_of_one_shape_share_one_cache_key(dialect):
    one = insert_ignore(SEEN, dialect).values(key="a", n=1)
    two = insert_ignore(SEEN, dialect).values(key="b", n=2)
    key_one, key_two = one._generate_cache_key(), two._generate_cache_key()
    assert key_one is not None and key_one.key == key_two.key
    plain = insert(SEEN).values(key="a", n=1)._generate_cache_key()
    assert plain is not None and plain.key != key_one.key  # never confused with a plain INSERT
    stock = postgresql.insert if dialect == "postgresql" else sqlite.insert
    assert stock(SEEN).values(key="a").on_conflict_do_nothing()._generate_cache_key() is None


def test_it_renders_do_nothing_on_both_dialects_and_refuses_an_update():
    pg = insert_ignore(SEEN, "postgresql").values(key="a").returning(SEEN.c.key)
    assert str(pg.compile(dialect=postgresql.dialect())).endswith(
        "ON CONFLICT DO NOTHING RETURNING seen.key"
    )
    lite = insert_ignore(SEEN, "sqlite").values(key="a")
    assert str(lite.compile(dialect=sqlite.dialect())).endswith("ON CONFLICT DO NOTHING")
    with pytest.raises(TypeError):
        insert_ignore(SEEN, "postgresql").on_conflict_do_update(index_elements=["key"])


def test_a_second_insert_of_a_key_changes_nothing():
    engine = create_engine("sqlite://")
    META.create_all(engine)
    with engine.begin() as conn:
        first = conn.execute(insert_ignore(SEEN, "sqlite").values(key="a", n=1))
        again = conn.execute(insert_ignore(SEEN, "sqlite").values(key="a", n=2))
        assert (first.rowcount, again.rowcount) == (1, 0)
        assert conn.execute(select(SEEN.c.n)).scalars().all() == [1]
