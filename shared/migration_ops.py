"""Migration operations every service shares. Each is FROZEN once released: a migration that
ran must build the same tables forever, so a later change to the outbox or inbox gets a new,
separately named operation (``..._v2``) used by a new migration, never an edit of this one."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def create_outbox_inbox_v1() -> None:
    """The outbox and inbox of ``shared.db.add_platform_tables`` as first released."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(80), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"])
    op.create_table(
        "inbox",
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("handler", sa.String(120), nullable=False),
        sa.Column("event_type", sa.String(80), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "handler", name="pk_inbox"),
    )


def drop_outbox_inbox_v1() -> None:
    op.drop_table("inbox")
    op.drop_index("ix_outbox_published_at", table_name="outbox")
    op.drop_table("outbox")


def create_inbox_processed_index_v1() -> None:
    """``ix_inbox_processed_at``: the pruner's ``DELETE … WHERE processed_at < :cutoff`` (one
    bounded batch at a time) reads the index instead of the whole inbox."""
    op.create_index("ix_inbox_processed_at", "inbox", ["processed_at"])


def drop_inbox_processed_index_v1() -> None:
    op.drop_index("ix_inbox_processed_at", table_name="inbox")


def create_idempotency_v1() -> None:
    """``idempotency_keys`` (``shared.idempotency``): key → outcome of each mutating request."""
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_idempotency_keys"),
    )


def drop_idempotency_v1() -> None:
    op.drop_table("idempotency_keys")
