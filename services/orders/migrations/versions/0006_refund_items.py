"""refunds name their items (refund_items); order items remember whether the shop carried them

Revision ID: orders_0003_refund_items
Revises: orders_0003_idempotency
"""

import sqlalchemy as sa
from alembic import op

revision = "orders_0003_refund_items"
down_revision = "orders_0003_idempotency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refund_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("refund_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["refund_id"],
            ["refunds.id"],
            name=op.f("fk_refund_items_refund_id_refunds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refund_items")),
    )
    op.create_index(op.f("ix_refund_items_refund_id"), "refund_items", ["refund_id"])
    op.add_column("order_items", sa.Column("carried", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("order_items") as batch:
        batch.drop_column("carried")
    op.drop_index(op.f("ix_refund_items_refund_id"), table_name="refund_items")
    op.drop_table("refund_items")
