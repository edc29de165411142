"""SQLAlchemy 2 tables of the share service (its own database; nobody else reads it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import service_metadata


class Base(DeclarativeBase):
    metadata = service_metadata()


class Share(Base):
    """One keeper's share of one product of their shop; ``code`` is its 口令 and its link."""

    __tablename__ = "shares"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    shop_id: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[int] = mapped_column(Integer)
    member_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_shares_shop_product", "shop_id", "product_id", "created_at"),)


class Visit(Base):
    """A counted landing visit, QR scan or code resolution (written in batches)."""

    __tablename__ = "visits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    share_id: Mapped[str] = mapped_column(String(36))
    shop_id: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[int] = mapped_column(Integer)
    visitor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    day: Mapped[str] = mapped_column(String(10))

    __table_args__ = (
        Index("ix_visits_shop_day", "shop_id", "day"),
        Index("ix_visits_visitor_at", "visitor_id", "at"),
    )


class PaidOrder(Base):
    """The stats read model's copy of ``order_paid`` (one row per order)."""

    __tablename__ = "paid_orders"
    order_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    shop_id: Mapped[int] = mapped_column(Integer)
    share_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    paid_fen: Mapped[int] = mapped_column(Integer)
    paid_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    day: Mapped[str] = mapped_column(String(10))

    __table_args__ = (Index("ix_paid_orders_shop_day", "shop_id", "day"),)


class PosterCache(Base):
    """Rendered poster bytes keyed by the hash of everything drawn on them."""

    __tablename__ = "poster_cache"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    style: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(32))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
