"""idempotency_keys: the outcome of every mutating request, by its key (shared.idempotency)

Revision ID: catalog_0004_idempotency
Revises: catalog_0003
"""

from shared.migration_ops import create_idempotency_v1, drop_idempotency_v1

revision = "catalog_0004_idempotency"
down_revision = "catalog_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_idempotency_v1()


def downgrade() -> None:
    drop_idempotency_v1()
