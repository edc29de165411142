"""products.faq / specs / after_sales_policy: the facts keepers answer buyers with

Revision ID: catalog_0004_product_facts
Revises: catalog_0004_idempotency
"""

import sqlalchemy as sa
from alembic import op

revision = "catalog_0004_product_facts"
down_revision = "catalog_0004_idempotency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("faq", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("specs", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("after_sales_policy", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("after_sales_policy")
        batch_op.drop_column("specs")
        batch_op.drop_column("faq")
