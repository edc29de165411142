"""products.units_sold (sort=sales) and products.images (the gallery, first = cover)

Revision ID: catalog_0006_sort_gallery
Revises: catalog_0004_product_facts
"""

import sqlalchemy as sa
from alembic import op

revision = "catalog_0006_sort_gallery"
down_revision = "catalog_0004_product_facts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("units_sold", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("images", sa.JSON(), nullable=True))
    op.create_index(
        "ix_products_browse_sales",
        "products",
        ["status", "supplier_active", "units_sold", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_products_browse_sales", table_name="products")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("images")
        batch_op.drop_column("units_sold")
