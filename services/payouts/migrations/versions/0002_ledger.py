"""the ledger: append-only journal, order facts, level history, settlements, payout runs

Revision ID: payouts_0002
Revises: payouts_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "payouts_0002"
down_revision = "payouts_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journal",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("entry_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column("party_id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal")),
        sa.UniqueConstraint(
            "entry_id", "account", "party_id", name="uq_journal_entry_account_party"
        ),
    )
    op.create_index("ix_journal_account_party", "journal", ["account", "party_id", "posted_at"])

    op.create_table(
        "level_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("shop_id", sa.BigInteger(), nullable=False),
        sa.Column("level", sa.String(length=20), nullable=False),
        sa.Column("bonus_bps", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_level_history")),
    )
    op.create_index("ix_level_history_shop", "level_history", ["shop_id", "effective_at"])

    op.create_table(
        "order_facts",
        sa.Column("order_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("shop_id", sa.BigInteger(), nullable=True),
        sa.Column("supplier_id", sa.BigInteger(), nullable=True),
        sa.Column("buyer_id", sa.BigInteger(), nullable=True),
        sa.Column("self_referral", sa.Boolean(), nullable=False),
        sa.Column("accrued", sa.Boolean(), nullable=False),
        sa.Column("paid_fen", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lines_json", sa.Text(), nullable=True),
        sa.Column("commission_bps", sa.Integer(), nullable=False),
        sa.Column("bonus_bps", sa.Integer(), nullable=False),
        sa.Column("commission_fen", sa.BigInteger(), nullable=False),
        sa.Column("fee_fen", sa.BigInteger(), nullable=False),
        sa.Column("supplier_fen", sa.BigInteger(), nullable=False),
        sa.Column("refunded_total_fen", sa.BigInteger(), nullable=False),
        sa.Column("reversed_commission_fen", sa.BigInteger(), nullable=False),
        sa.Column("reversed_fee_fen", sa.BigInteger(), nullable=False),
        sa.Column("reversed_supplier_fen", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settlement_id", sa.BigInteger(), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settled_commission_fen", sa.BigInteger(), nullable=False),
        sa.Column("settled_sales_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_order_facts")),
    )
    op.create_index("ix_order_facts_settlement_id", "order_facts", ["settlement_id"])
    op.create_index("ix_order_facts_shop_id", "order_facts", ["shop_id"])
    op.create_index(
        "ix_order_facts_unsettled",
        "order_facts",
        ["received_at"],
        postgresql_where=sa.text("settled_at IS NULL"),
        sqlite_where=sa.text("settled_at IS NULL"),
    )

    op.create_table(
        "payout_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_runs")),
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("paid_run_id", sa.Integer(), nullable=True),
        sa.Column("party_kind", sa.String(length=10), nullable=False),
        sa.Column("party_id", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("provider_ref", sa.String(length=80), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
    )
    op.create_index("ix_payouts_party", "payouts", ["party_kind", "party_id", "status"])
    op.create_index("ix_payouts_status", "payouts", ["status"])

    op.create_table(
        "sandbox_transfers",
        sa.Column("idempotency_key", sa.String(length=80), nullable=False),
        sa.Column("party_kind", sa.String(length=10), nullable=False),
        sa.Column("party_id", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_sandbox_transfers")),
    )
    op.create_table(
        "settlements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlements")),
    )

    # the journal is append-only: corrections are new entries, never edits
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION payouts_journal_append_only() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'the journal is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER journal_append_only BEFORE UPDATE OR DELETE ON journal "
            "FOR EACH ROW EXECUTE FUNCTION payouts_journal_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER journal_no_{action.lower()} BEFORE {action} ON journal "
                "BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS journal_append_only ON journal")
        op.execute("DROP FUNCTION IF EXISTS payouts_journal_append_only()")
    op.drop_table("settlements")
    op.drop_table("sandbox_transfers")
    op.drop_index("ix_payouts_status", table_name="payouts")
    op.drop_index("ix_payouts_party", table_name="payouts")

    op.drop_table("payouts")
    op.drop_table("payout_runs")
    op.drop_index("ix_order_facts_unsettled", table_name="order_facts")
    op.drop_index("ix_order_facts_shop_id", table_name="order_facts")
    op.drop_index("ix_order_facts_settlement_id", table_name="order_facts")

    op.drop_table("order_facts")
    op.drop_index("ix_level_history_shop", table_name="level_history")

    op.drop_table("level_history")
    op.drop_index("ix_journal_account_party", table_name="journal")

    op.drop_table("journal")
