"""stock allotments (issue 19): products.allotted, stock_grants and stock_reclaims — the catalog
grants stock to orders' pool in batches instead of one reserve_stock call per checkout

Revision ID: catalog_0008_stock_allotments
Revises: catalog_0007_inbox_processed_at
"""

import sqlalchemy as sa
from alembic import op

revision = "catalog_0008_stock_allotments"
down_revision = "catalog_0007_inbox_processed_at"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allotted", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "stock_grants",
        sa.Column("grant_id", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"]),
        sa.PrimaryKeyConstraint("grant_id", "product_id"),
    )
    op.create_index("ix_stock_grants_product_status", "stock_grants", ["product_id", "status"])
    op.create_table(
        "stock_reclaims",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("product_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stock_reclaims_status_created", "stock_reclaims", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_stock_reclaims_status_created", table_name="stock_reclaims")
    op.drop_table("stock_reclaims")
    op.drop_index("ix_stock_grants_product_status", table_name="stock_grants")
    op.drop_table("stock_grants")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("allotted")
