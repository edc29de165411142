"""outbox and inbox tables (every service has them)

Revision ID: messages_0001
Revises:
"""

from shared.migration_ops import create_outbox_inbox_v1, drop_outbox_inbox_v1

revision = "messages_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_inbox_v1()


def downgrade() -> None:
    drop_outbox_inbox_v1()
