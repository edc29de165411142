"""inbox.processed_at indexed: the relay's pruner deletes inbox rows by age (shared.pruning)

Revision ID: payouts_0008_inbox_processed_at
Revises: payouts_0004_holds
"""

from shared.migration_ops import create_inbox_processed_index_v1, drop_inbox_processed_index_v1

revision = "payouts_0008_inbox_processed_at"
down_revision = "payouts_0004_holds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_inbox_processed_index_v1()


def downgrade() -> None:
    drop_inbox_processed_index_v1()
