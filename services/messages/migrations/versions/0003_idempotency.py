"""idempotency_keys: the outcome of every mutating request, by its key (shared.idempotency)

Revision ID: messages_0003_idempotency
Revises: messages_0002
"""

from shared.migration_ops import create_idempotency_v1, drop_idempotency_v1

revision = "messages_0003_idempotency"
down_revision = "messages_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_idempotency_v1()


def downgrade() -> None:
    drop_idempotency_v1()
