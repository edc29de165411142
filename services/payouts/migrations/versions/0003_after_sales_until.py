"""order facts keep orders' after_sales_until; the unsettled index follows it

The after-sales window is orders' rule: ``order_received`` carries the instant it closes and
settlement compares it with the run's instant. Rows written before this revision have none;
they settle on ``order_completed``, which orders sends when the window closes.

Revision ID: payouts_0003
Revises: payouts_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "payouts_0003"
down_revision = "payouts_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "order_facts", sa.Column("after_sales_until", sa.DateTime(timezone=True), nullable=True)
    )
    op.drop_index("ix_order_facts_unsettled", table_name="order_facts")
    op.create_index(
        "ix_order_facts_unsettled",
        "order_facts",
        ["after_sales_until"],
        postgresql_where=sa.text("settled_at IS NULL"),
        sqlite_where=sa.text("settled_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_order_facts_unsettled", table_name="order_facts")
    with op.batch_alter_table("order_facts") as batch:
        batch.drop_column("after_sales_until")
    op.create_index(
        "ix_order_facts_unsettled",
        "order_facts",
        ["received_at"],
        postgresql_where=sa.text("settled_at IS NULL"),
        sqlite_where=sa.text("settled_at IS NULL"),
    )
