"""shops.view_version: bumped by every change the public shop view shows (cache key)

Revision ID: shop_0003
Revises: shop_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "shop_0003"
down_revision = "shop_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("view_version", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.drop_column("view_version")
