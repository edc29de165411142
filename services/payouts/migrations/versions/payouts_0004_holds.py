"""holds on accruals (refund_open, fraud, suspension); order facts remember each refund's items

Revision ID: payouts_0004_holds
Revises: payouts_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "payouts_0004_holds"
down_revision = "payouts_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "holds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision", sa.String(length=32), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holds")),
    )
    op.create_index("ix_holds_order", "holds", ["order_id", "reason", "ref"])
    op.create_index(
        "ix_holds_open",
        "holds",
        ["order_id"],
        postgresql_where=sa.text("released_at IS NULL"),
        sqlite_where=sa.text("released_at IS NULL"),
    )
    op.add_column("order_facts", sa.Column("refunds_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("order_facts") as batch:
        batch.drop_column("refunds_json")
    op.drop_index("ix_holds_open", table_name="holds")
    op.drop_index("ix_holds_order", table_name="holds")
    op.drop_table("holds")
