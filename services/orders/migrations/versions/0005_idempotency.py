"""idempotency_keys: the outcome of every mutating request, by its key (shared.idempotency)

Revision ID: orders_0003_idempotency
Revises: orders_0003_payment_conflicts
"""

from shared.migration_ops import create_idempotency_v1, drop_idempotency_v1

revision = "orders_0003_idempotency"
down_revision = "orders_0003_payment_conflicts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_idempotency_v1()


def downgrade() -> None:
    drop_idempotency_v1()
