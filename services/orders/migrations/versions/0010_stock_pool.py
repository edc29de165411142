"""stock_pool, stock_grants, stock_reclaims and orders.stock_from: checkout takes its stock
from a pool of units the catalog grants in batches, in its own transaction (no reserve_stock
RPC per order). Orders placed before keep ``stock_from = 'catalog'`` (their reservation).

Revision ID: orders_0010_stock_pool
Revises: orders_0009_inbox_processed_at
"""

import sqlalchemy as sa
from alembic import op

revision = "orders_0010_stock_pool"
down_revision = "orders_0009_inbox_processed_at"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "orders",
        sa.Column("stock_from", sa.String(length=10), server_default="catalog", nullable=False),
    )
    op.create_table(
        "stock_pool",
        sa.Column("product_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("price_fen", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_stock_pool")),
    )
    op.create_table(
        "stock_grants",
        sa.Column("grant_id", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("wanted", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("grant_id", "product_id", name=op.f("pk_stock_grants")),
    )
    op.create_index(
        "ix_stock_grants_state_created", "stock_grants", ["state", "created_at"], unique=False
    )
    op.create_table(
        "stock_reclaims",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_reclaims")),
    )


def downgrade() -> None:
    op.drop_table("stock_reclaims")
    op.drop_index("ix_stock_grants_state_created", table_name="stock_grants")
    op.drop_table("stock_grants")
    op.drop_table("stock_pool")
    op.drop_column("orders", "stock_from")
