"""members.real_name: the verified real name on the identity record (payee accounts match it)

Revision ID: shop_0004_member_real_name
Revises: shop_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "shop_0004_member_real_name"
down_revision = "shop_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("real_name", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_column("real_name")
