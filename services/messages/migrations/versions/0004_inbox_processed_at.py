"""inbox.processed_at indexed: the relay's pruner deletes inbox rows by age (shared.pruning)

Revision ID: messages_0004_inbox_processed_at
Revises: messages_0003_idempotency
"""

from shared.migration_ops import create_inbox_processed_index_v1, drop_inbox_processed_index_v1

revision = "messages_0004_inbox_processed_at"
down_revision = "messages_0003_idempotency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_inbox_processed_index_v1()


def downgrade() -> None:
    drop_inbox_processed_index_v1()
