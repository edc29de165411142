"""Pruning (shared.pruning): old published outbox rows and old inbox rows go, in batches; an
unpublished outbox row stays however old, and so does every row younger than its retention.
Real PostgreSQL (or SQLite in the SQLite tier) and, for the relay's own pass, real RabbitMQ."""

from __future__ import annotations

from datetime import timedelta

import pytest
from nameko.rpc import rpc
from sqlalchemy import func, insert, select

from shared import clock
from shared.db import Database, make_engine, service_metadata
from shared.pruning import Pruner
from shared.testing import wait_for

metadata = service_metadata()
OUTBOX = metadata.tables["outbox"]
INBOX = metadata.tables["inbox"]


class Pruned:
    """A service with nothing but the platform tables: its relay prunes them."""

    name = "pruned"
    db = Database(metadata)

    @rpc
    def ping(self) -> str:
        return "pong"


@pytest.fixture
def engine(make_database):
    engine = make_engine(make_database("prune", migrate=False))
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def seed(engine, days_old: dict[str, list[float | None]]) -> None:
    """Outbox rows published ``days`` ago (None: never published, created 30 days ago) and
    inbox rows processed ``days`` ago."""
    now = clock.real_now()
    with engine.begin() as conn:
        for n, days in enumerate(days_old.get("outbox", [])):
            conn.execute(
                insert(OUTBOX).values(
                    event_id=f"ev-{n}",
                    event_type="note_written",
                    payload="{}",
                    created_at=now - timedelta(days=30 if days is None else days),
                    published_at=None if days is None else now - timedelta(days=days),
                    attempts=0,
                )
            )
        for n, days in enumerate(days_old.get("inbox", [])):
            assert days is not None
            conn.execute(
                insert(INBOX).values(
                    event_id=f"in-{n}",
                    handler="on_note",
                    event_type="note_written",
                    processed_at=now - timedelta(days=days),
                )
            )


def left(engine) -> tuple[list[str], list[str]]:
    with engine.connect() as conn:
        outbox = sorted(conn.execute(select(OUTBOX.c.event_id)).scalars())
        inbox = sorted(conn.execute(select(INBOX.c.event_id)).scalars())
    return outbox, inbox


def test_pruning_removes_only_rows_past_their_retention_in_batches(engine):
    # 5 old published rows with a batch of 2: three batches; one old row never published
    seed(
        engine,
        {
            "outbox": [8, 9, 10, 11, 12, None, 1, 6.9],
            "inbox": [8, 30, 8.5, 1, 6.9],
        },
    )
    pruner = Pruner(
        "pruned",
        engine,
        OUTBOX,
        INBOX,
        {"OUTBOX_RETENTION_DAYS": 7, "INBOX_RETENTION_DAYS": 7, "PRUNE_BATCH": 2},
    )
    steps = 1
    while pruner.step():
        steps += 1
    outbox, inbox = left(engine)
    assert outbox == ["ev-5", "ev-6", "ev-7"]  # unpublished, 1 day, 6.9 days
    assert inbox == ["in-3", "in-4"]  # 1 day, 6.9 days
    # outbox: 2 + 2 + 1 rows; inbox: 2 + 1 rows
    assert steps == 5
    assert pruner.step() is False  # the next pass is an interval away
    assert left(engine) == (outbox, inbox)


def test_a_longer_inbox_retention_keeps_inbox_rows_the_outbox_lets_go(engine):
    seed(engine, {"outbox": [8], "inbox": [8]})
    pruner = Pruner(
        "pruned", engine, OUTBOX, INBOX, {"OUTBOX_RETENTION_DAYS": 7, "INBOX_RETENTION_DAYS": 10}
    )
    while pruner.step():
        pass
    assert left(engine) == ([], ["in-0"])


def test_the_relay_of_a_running_service_prunes(container_factory, rabbit_config, engine):
    seed(engine, {"outbox": [8, None, 1], "inbox": [8, 1]})
    config = {
        "AMQP_URI": rabbit_config["AMQP_URI"],
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "OUTBOX_POLL_SECONDS": 0.2,
    }
    container = container_factory(Pruned, config)
    container.start()

    def pruned():
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(OUTBOX)).scalar_one() == 2 and (
                conn.execute(select(func.count()).select_from(INBOX)).scalar_one() == 1
            )

    wait_for(pruned, timeout=30)
    outbox, inbox = left(engine)
    assert inbox == ["in-1"]
    # the never-published row was relayed meanwhile, and is kept (published just now)
    assert outbox == ["ev-1", "ev-2"]
