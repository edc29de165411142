"""refunds.decide_by / escalated_at: the supplier's decision deadline and the platform's queue

Refunds still waiting get the default deadline (48 h after the request) so the timer sees them.

Revision ID: orders_0006_refund_deadlines
Revises: orders_0003_refund_items
"""

from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision = "orders_0006_refund_deadlines"
down_revision = "orders_0003_refund_items"
branch_labels = None
depends_on = None

DEFAULT_DECISION_HOURS = 48  # orders' refund_decision_hours default (domain.OrderRules)


def upgrade() -> None:
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decide_by", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_refunds_status_decide_by", "refunds", ["status", "decide_by"])
    refunds = sa.table(
        "refunds",
        sa.column("id", sa.Integer),
        sa.column("status", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("decide_by", sa.DateTime(timezone=True)),
    )
    bind = op.get_bind()
    waiting = bind.execute(
        sa.select(refunds.c.id, refunds.c.created_at).where(refunds.c.status == "requested")
    ).all()
    for row in waiting:
        bind.execute(
            refunds.update()
            .where(refunds.c.id == row.id)
            .values(decide_by=row.created_at + timedelta(hours=DEFAULT_DECISION_HOURS))
        )


def downgrade() -> None:
    op.drop_index("ix_refunds_status_decide_by", table_name="refunds")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_column("escalated_at")
        batch_op.drop_column("decide_by")
