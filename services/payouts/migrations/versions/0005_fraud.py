"""holds on accruals (fraud review, suspension) and the read models of the fraud rules

Revision ID: payouts_0004_fraud
Revises: payouts_0004_payees_withdrawals
"""

import sqlalchemy as sa
from alembic import op

revision = "payouts_0004_fraud"
down_revision = "payouts_0004_payees_withdrawals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "order_facts",
        sa.Column("commission_forfeited", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "accrual_holds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("shop_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision", sa.String(length=20), nullable=True),
        sa.Column("decided_by", sa.String(length=80), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accrual_holds")),
    )
    op.create_index("ix_accrual_holds_order", "accrual_holds", ["order_id", "released_at"])
    op.create_index("ix_accrual_holds_shop", "accrual_holds", ["shop_id", "released_at"])
    op.create_table(
        "fraud_fingerprints",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=True),
        sa.Column("shop_id", sa.BigInteger(), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fraud_fingerprints")),
    )
    op.create_index("ix_fraud_fingerprints_member", "fraud_fingerprints", ["member_id", "kind"])
    op.create_index(
        "ix_fraud_fingerprints_shop",
        "fraud_fingerprints",
        ["shop_id", "kind", "fingerprint", "seen_at"],
    )
    op.create_table(
        "shop_standing",
        sa.Column("shop_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("suspended", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shop_id", name=op.f("pk_shop_standing")),
    )


def downgrade() -> None:
    op.drop_table("shop_standing")
    op.drop_index("ix_fraud_fingerprints_shop", table_name="fraud_fingerprints")
    op.drop_index("ix_fraud_fingerprints_member", table_name="fraud_fingerprints")
    op.drop_table("fraud_fingerprints")
    op.drop_index("ix_accrual_holds_shop", table_name="accrual_holds")
    op.drop_index("ix_accrual_holds_order", table_name="accrual_holds")
    op.drop_table("accrual_holds")
    with op.batch_alter_table("order_facts") as batch:
        batch.drop_column("commission_forfeited")
