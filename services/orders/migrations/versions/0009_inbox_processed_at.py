"""inbox.processed_at indexed: the relay's pruner deletes inbox rows by age (shared.pruning)

Revision ID: orders_0009_inbox_processed_at
Revises: orders_0008_product_read_model
"""

from shared.migration_ops import create_inbox_processed_index_v1, drop_inbox_processed_index_v1

revision = "orders_0009_inbox_processed_at"
down_revision = "orders_0008_product_read_model"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_inbox_processed_index_v1()


def downgrade() -> None:
    drop_inbox_processed_index_v1()
