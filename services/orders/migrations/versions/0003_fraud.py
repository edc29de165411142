"""orders keep the buyer's fingerprints (salted hashes of delivery phone, address, visitor)

``order_paid`` carries them to payouts, whose fraud rules compare them with the keeper's
(issue 13). Orders placed before this revision have none: their rules see nothing to match.

Revision ID: orders_0003_fraud
Revises: orders_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "orders_0003_fraud"
down_revision = "orders_0002"
branch_labels = None
depends_on = None

COLUMNS = ("buyer_phone_fp", "buyer_address_fp", "buyer_visitor_fp")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("orders", sa.Column(name, sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        for name in COLUMNS:
            batch.drop_column(name)
