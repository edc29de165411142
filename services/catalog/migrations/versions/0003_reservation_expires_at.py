"""reservations.expires_at: each hold expires when its caller says (orders' unpaid expiry) plus
the catalog's grace, instead of one catalog-wide TTL

Revision ID: catalog_0003
Revises: catalog_0002
"""

from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision = "catalog_0003"
down_revision = "catalog_0002"
branch_labels = None
depends_on = None

# the TTL every existing hold was given until now (XIAOPU_RESERVATION_TTL_SECONDS default)
OLD_TTL_SECONDS = 2100


def upgrade() -> None:
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    reservations = sa.table(
        "reservations",
        sa.column("id", sa.String(64)),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("expires_at", sa.DateTime(timezone=True)),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(reservations.c.id, reservations.c.created_at)).all()
    for rid, created_at in rows:
        bind.execute(
            reservations.update()
            .where(reservations.c.id == rid)
            .values(expires_at=created_at + timedelta(seconds=OLD_TTL_SECONDS))
        )
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.alter_column(
            "expires_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )
        batch_op.drop_index("ix_reservations_status_created")
        batch_op.create_index("ix_reservations_status_expires", ["status", "expires_at"])


def downgrade() -> None:
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_index("ix_reservations_status_expires")
        batch_op.create_index("ix_reservations_status_created", ["status", "created_at"])
        batch_op.drop_column("expires_at")
