"""one hold mechanism: accrual_holds (issue 13's table) gains ``ref`` to tell holds of one
reason apart (a refund_open hold's refund id, issue 16); order facts remember each refund's items

Revision ID: payouts_0004_holds
Revises: payouts_0004_idempotency
"""

import sqlalchemy as sa
from alembic import op

revision = "payouts_0004_holds"
down_revision = "payouts_0004_idempotency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "accrual_holds",
        sa.Column("ref", sa.String(length=64), server_default="", nullable=False),
    )
    op.add_column("order_facts", sa.Column("refunds_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("order_facts") as batch:
        batch.drop_column("refunds_json")
    with op.batch_alter_table("accrual_holds") as batch:
        batch.drop_column("ref")
