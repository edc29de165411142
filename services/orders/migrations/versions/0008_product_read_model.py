"""product_views: orders' read model of catalog products (checkout prices from it, no RPC);
an index on payments.outcome (the late-payment timer looks up refund_due every tick).

Revision ID: orders_0008_product_read_model
Revises: orders_0006_refund_deadlines
"""

import sqlalchemy as sa
from alembic import op

revision = "orders_0008_product_read_model"
down_revision = "orders_0006_refund_deadlines"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "product_views",
        sa.Column("product_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("supplier_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("category", sa.String(length=50), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("brand", sa.String(length=200), nullable=True),
        sa.Column("image_url", sa.String(length=2000), nullable=True),
        sa.Column("price_fen", sa.BigInteger(), nullable=False),
        sa.Column("commission_bps", sa.Integer(), nullable=False),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_product_views")),
    )
    op.create_index(op.f("ix_payments_outcome"), "payments", ["outcome"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_payments_outcome"), table_name="payments")
    op.drop_table("product_views")
