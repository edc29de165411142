"""shares, visits, the paid-orders read model and the poster cache

Revision ID: share_0002
Revises: share_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "share_0002"
down_revision = "share_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shares",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_shares"),
        sa.UniqueConstraint("code", name="uq_shares_code"),
    )
    op.create_index("ix_shares_shop_product", "shares", ["shop_id", "product_id", "created_at"])
    op.create_table(
        "visits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("share_id", sa.String(36), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("visitor_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_visits"),
    )
    op.create_index("ix_visits_shop_day", "visits", ["shop_id", "day"])
    op.create_index("ix_visits_visitor_at", "visits", ["visitor_id", "at"])
    op.create_table(
        "paid_orders",
        sa.Column("order_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("share_id", sa.String(36), nullable=True),
        sa.Column("paid_fen", sa.Integer(), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name="pk_paid_orders"),
    )
    op.create_index("ix_paid_orders_shop_day", "paid_orders", ["shop_id", "day"])
    op.create_table(
        "poster_cache",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("style", sa.String(16), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_poster_cache"),
    )


def downgrade() -> None:
    op.drop_table("poster_cache")
    op.drop_index("ix_paid_orders_shop_day", table_name="paid_orders")
    op.drop_table("paid_orders")
    op.drop_index("ix_visits_visitor_at", table_name="visits")
    op.drop_index("ix_visits_shop_day", table_name="visits")
    op.drop_table("visits")
    op.drop_index("ix_shares_shop_product", table_name="shares")
    op.drop_table("shares")
