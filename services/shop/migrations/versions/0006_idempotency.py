"""idempotency_keys: the outcome of every mutating request, by its key (shared.idempotency)

Revision ID: shop_0004_idempotency
Revises: shop_0004_suspensions
"""

from shared.migration_ops import create_idempotency_v1, drop_idempotency_v1

revision = "shop_0004_idempotency"
down_revision = "shop_0004_suspensions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_idempotency_v1()


def downgrade() -> None:
    drop_idempotency_v1()
