"""threads and their messages, notifications owed and sent, preferences, the shop-picks read
model, sandbox messages

Revision ID: messages_0002
Revises: messages_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "messages_0002"
down_revision = "messages_0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "threads",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=True),
        sa.Column("order_status", sa.String(20), nullable=True),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("topic", sa.String(20), nullable=False),
        sa.Column("buyer_id", sa.BigInteger(), nullable=False),
        sa.Column("shop_id", sa.BigInteger(), nullable=True),
        sa.Column("shop_number", sa.String(20), nullable=True),
        sa.Column("share_id", sa.String(64), nullable=True),
        sa.Column("keeper_member_id", sa.BigInteger(), nullable=True),
        sa.Column("supplier_id", sa.BigInteger(), nullable=False),
        sa.Column("supplier_sees", sa.Boolean(), nullable=False),
        sa.Column("routed_to", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("answer_due_at", TS, nullable=True),
        sa.Column("facts_snapshot", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("forwarded_at", TS, nullable=True),
        sa.Column("escalated_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_threads"),
    )
    op.create_index("ix_threads_order_id", "threads", ["order_id"])
    op.create_index("ix_threads_buyer", "threads", ["buyer_id", "updated_at"])
    op.create_index("ix_threads_keeper", "threads", ["keeper_member_id", "updated_at"])
    op.create_index(
        "ix_threads_supplier", "threads", ["supplier_id", "supplier_sees", "updated_at"]
    )
    op.create_index("ix_threads_due", "threads", ["status", "answer_due_at"])
    op.create_table(
        "thread_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("from_role", sa.String(20), nullable=False),
        sa.Column("author_id", sa.String(40), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["threads.id"],
            name="fk_thread_messages_thread_id_threads",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_thread_messages"),
    )
    op.create_index("ix_thread_messages_thread_id", "thread_messages", ["thread_id"])
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(80), nullable=False),
        sa.Column("recipient", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("person", sa.String(40), nullable=True),
        sa.Column("channels", sa.JSON(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.UniqueConstraint("event_id", "recipient", "kind", name="uq_notifications_event"),
    )
    op.create_index("ix_notifications_person_sent", "notifications", ["person", "sent_at"])
    op.create_index("ix_notifications_status", "notifications", ["status", "id"])
    op.create_table(
        "notification_preferences",
        sa.Column("person", sa.String(40), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("muted", sa.JSON(), nullable=False),
        sa.Column("email", sa.String(200), nullable=True),
        sa.Column("wechat", sa.String(100), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("person", name="pk_notification_preferences"),
    )
    op.create_table(
        "shop_picks",
        sa.Column("shop_id", sa.BigInteger(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("selected_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "product_id", name="pk_shop_picks"),
    )
    op.create_index("ix_shop_picks_product_id", "shop_picks", ["product_id"])
    op.create_table(
        "sandbox_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("to", sa.String(200), nullable=False),
        sa.Column("template", sa.String(40), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sandbox_messages"),
    )
    op.create_index("ix_sandbox_messages_to_created", "sandbox_messages", ["to", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_sandbox_messages_to_created", table_name="sandbox_messages")
    op.drop_table("sandbox_messages")
    op.drop_index("ix_shop_picks_product_id", table_name="shop_picks")
    op.drop_table("shop_picks")
    op.drop_table("notification_preferences")
    op.drop_index("ix_notifications_status", table_name="notifications")
    op.drop_index("ix_notifications_person_sent", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index("ix_thread_messages_thread_id", table_name="thread_messages")
    op.drop_table("thread_messages")
    op.drop_index("ix_threads_due", table_name="threads")
    op.drop_index("ix_threads_supplier", table_name="threads")
    op.drop_index("ix_threads_keeper", table_name="threads")
    op.drop_index("ix_threads_buyer", table_name="threads")
    op.drop_index("ix_threads_order_id", table_name="threads")
    op.drop_table("threads")
