"""payee accounts (and their history), withdrawals, keepers' payout mode, withheld income tax

Revision ID: payouts_0004_payees_withdrawals
Revises: payouts_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "payouts_0004_payees_withdrawals"
down_revision = "payouts_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "payouts",
        sa.Column("withheld_fen", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_table(
        "payout_settings",
        sa.Column("shop_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("payout_mode", sa.String(10), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "payee_accounts",
        sa.Column("party_kind", sa.String(10), primary_key=True),
        sa.Column("party_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("account", sa.String(200), nullable=False),
        sa.Column("real_name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "payee_changes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("party_kind", sa.String(10), nullable=False),
        sa.Column("party_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("account_masked", sa.String(20), nullable=False),
        sa.Column("real_name", sa.String(100), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_payee_changes_party", "payee_changes", ["party_kind", "party_id", "id"])
    op.create_table(
        "withdrawals",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("shop_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("fee_fen", sa.BigInteger(), nullable=False),
        sa.Column("withheld_fen", sa.BigInteger(), nullable=False),
        sa.Column("net_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("account_masked", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("provider_ref", sa.String(80), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_withdrawals_shop", "withdrawals", ["shop_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_withdrawals_shop", table_name="withdrawals")
    op.drop_table("withdrawals")
    op.drop_index("ix_payee_changes_party", table_name="payee_changes")
    op.drop_table("payee_changes")
    op.drop_table("payee_accounts")
    op.drop_table("payout_settings")
    with op.batch_alter_table("payouts") as batch:
        batch.drop_column("withheld_fen")
