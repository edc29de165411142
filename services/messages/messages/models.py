"""SQLAlchemy 2 tables of the messages service (its own database; nobody else reads it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.db import service_metadata

TS = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = service_metadata()


class Thread(Base):
    """A buyer's question and everything said about it. ``kind``: ``order`` (after buying,
    ``order_id`` set, routed by topic and the order's state) or ``pre_sale`` (from a share or a
    shop, routed to its keeper). The parties are copied from the order / shop when it opens."""

    __tablename__ = "threads"
    __table_args__ = (
        Index("ix_threads_buyer", "buyer_id", "updated_at"),
        Index("ix_threads_keeper", "keeper_member_id", "updated_at"),
        Index("ix_threads_supplier", "supplier_id", "supplier_sees", "updated_at"),
        Index("ix_threads_due", "status", "answer_due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(20))
    order_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    order_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    product_id: Mapped[int] = mapped_column(BigInteger)
    topic: Mapped[str] = mapped_column(String(20))
    buyer_id: Mapped[int] = mapped_column(BigInteger)
    shop_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    shop_number: Mapped[str | None] = mapped_column(String(20), nullable=True)
    share_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    keeper_member_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    supplier_id: Mapped[int] = mapped_column(BigInteger)
    supplier_sees: Mapped[bool] = mapped_column(Boolean, default=False)
    routed_to: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    answer_due_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    # the product as the order snapshotted it at checkout (title, description, price paid, ...)
    facts_snapshot: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(TS)
    updated_at: Mapped[datetime] = mapped_column(TS)
    forwarded_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    escalated_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)

    messages: Mapped[list[ThreadMessage]] = relationship(
        order_by="ThreadMessage.id", cascade="all, delete-orphan", lazy="selectin"
    )


class ThreadMessage(Base):
    __tablename__ = "thread_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"), index=True)
    from_role: Mapped[str] = mapped_column(String(20))  # buyer | keeper | supplier | platform
    author_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20), default="message")  # message | forward | ...
    created_at: Mapped[datetime] = mapped_column(TS)


class Notification(Base):
    """One notification owed to one recipient because of one event: at most one row per
    (event id, recipient, kind). ``recipient`` is ``member:<id>``, ``supplier:<id>`` or
    ``shop:<id>`` (the shop's keeper, resolved when it is sent). ``status``: pending →
    sending → sent | muted | rate_limited | unreachable | failed (every chosen channel's
    provider refused it); a row left ``sending`` by a crash is never sent again (at most once)."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("event_id", "recipient", "kind", name="uq_notifications_event"),
        Index("ix_notifications_person_sent", "person", "sent_at"),
        Index("ix_notifications_status", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(80))
    recipient: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    person: Mapped[str | None] = mapped_column(String(40), nullable=True)  # member:/supplier:
    channels: Mapped[list | None] = mapped_column(JSON, nullable=True)  # where it went
    created_at: Mapped[datetime] = mapped_column(TS)
    sent_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)


class Preference(Base):
    """A person's notification choices (absent: SMS for everything)."""

    __tablename__ = "notification_preferences"

    person: Mapped[str] = mapped_column(String(40), primary_key=True)
    channels: Mapped[list] = mapped_column(JSON)
    muted: Mapped[list] = mapped_column(JSON)
    email: Mapped[str | None] = mapped_column(String(200), nullable=True)
    wechat: Mapped[str | None] = mapped_column(String(100), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(TS)


class ShopPick(Base):
    """Read model of shop's selections (``selection_changed``): which shops carry a product,
    so a delisted product's keepers are told."""

    __tablename__ = "shop_picks"

    shop_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    product_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)
    selected_at: Mapped[datetime] = mapped_column(TS)


class SandboxMessage(Base):
    """Every message the sandbox channel adapters "sent" (test mode lists them)."""

    __tablename__ = "sandbox_messages"
    __table_args__ = (Index("ix_sandbox_messages_to_created", "to", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(20))
    to: Mapped[str] = mapped_column(String(200))
    template: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    notification_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(TS)
