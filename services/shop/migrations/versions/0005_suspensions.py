"""suspensions: an admin suspends and reinstates a shop or a member, with a recorded reason

Revision ID: shop_0004_suspensions
Revises: shop_0004_member_real_name
"""

import sqlalchemy as sa
from alembic import op

revision = "shop_0004_suspensions"
down_revision = "shop_0004_member_real_name"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("suspension_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("shops") as batch:
        batch.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("suspension_reason", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("keeper_suspended", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "suspensions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(length=10), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(length=60), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suspensions")),
    )
    op.create_index(op.f("ix_suspensions_subject_id"), "suspensions", ["subject_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_suspensions_subject_id"), table_name="suspensions")
    op.drop_table("suspensions")
    with op.batch_alter_table("shops") as batch:
        batch.drop_column("keeper_suspended")
        batch.drop_column("suspension_reason")
        batch.drop_column("suspended_at")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("suspension_reason")
        batch.drop_column("suspended_at")
