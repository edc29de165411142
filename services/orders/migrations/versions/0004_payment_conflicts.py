"""payments keyed by (provider, payment id); payment_conflicts

Revision ID: orders_0003_payment_conflicts
Revises: orders_0003_fraud
Create Date: 2026-12-01 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "orders_0003_payment_conflicts"
down_revision = "orders_0003_fraud"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_constraint("pk_payments", type_="primary")
        batch_op.create_primary_key("pk_payments", ["payment_id", "provider"])
    op.create_table(
        "payment_conflicts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=100), nullable=False),
        sa.Column("order_id_claimed", sa.BigInteger(), nullable=False),
        sa.Column("order_id_owning", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raw_callback", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_conflicts")),
    )
    with op.batch_alter_table("payment_conflicts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payment_conflicts_payment_id"), ["payment_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("payment_conflicts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_conflicts_payment_id"))
    op.drop_table("payment_conflicts")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_constraint("pk_payments", type_="primary")
        batch_op.create_primary_key("pk_payments", ["payment_id"])
