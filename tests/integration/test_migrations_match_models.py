"""Every service's Alembic history builds exactly the tables its models describe (on
PostgreSQL, and on SQLite in the second pass): a model change without a migration fails here."""

from __future__ import annotations

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shared.config import SERVICES
from shared.db import make_engine


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_build_what_the_models_describe(service, make_database):
    url = make_database(service)  # migrated to head
    metadata = importlib.import_module(f"{service}.models").Base.metadata
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": f"alembic_version_{service}", "compare_type": False}
            )
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
