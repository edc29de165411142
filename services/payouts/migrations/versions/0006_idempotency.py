"""idempotency_keys: the outcome of every mutating request, by its key (shared.idempotency)

Revision ID: payouts_0004_idempotency
Revises: payouts_0004_fraud
"""

from shared.migration_ops import create_idempotency_v1, drop_idempotency_v1

revision = "payouts_0004_idempotency"
down_revision = "payouts_0004_fraud"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_idempotency_v1()


def downgrade() -> None:
    drop_idempotency_v1()
