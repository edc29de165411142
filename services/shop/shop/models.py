"""SQLAlchemy 2 tables of the shop service (its own database; nobody else reads it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import service_metadata


class Base(DeclarativeBase):
    metadata = service_metadata()


class Member(Base):
    """A member (会员); the identity record carries the credit score and real-name flag."""

    __tablename__ = "members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    nickname: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    credit_score: Mapped[int] = mapped_column(Integer)
    real_name_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    # the name on the identity record (payouts matches payee accounts against it)
    real_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    shop_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: config
    shops_owned: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # an admin's suspension (its history is in ``suspensions``)
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    suspension_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Shop(Base):
    """A keeper's micro-shop (小铺). ``selection_count`` is the counter the 1,000-product limit
    is enforced on with one conditional UPDATE (atomic on PostgreSQL and SQLite)."""

    __tablename__ = "shops"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    shop_number: Mapped[str] = mapped_column(String(6), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    display_name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    logo_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    status: Mapped[str] = mapped_column(String(30))
    level: Mapped[str] = mapped_column(String(20), default="newcomer")
    level_month: Mapped[str | None] = mapped_column(String(7), nullable=True)
    selection_count: Mapped[int] = mapped_column(Integer, default=0)
    # bumped by every change the public view shows (shop fields, picks, product snapshots):
    # the service caches rendered views per (shop, view_version)
    view_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # suspension: the shop's own (an admin's decision) and its keeper's, mirrored here so every
    # read of a shop knows without a join (``domain.is_suspended``)
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    suspension_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    keeper_suspended: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Selection(Base):
    """A catalog product picked into a shop, with the keeper's recommendation reason."""

    __tablename__ = "selections"

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), primary_key=True)
    product_id: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    selected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CatalogProduct(Base):
    """The shop's read model of catalog products, fed by catalog events (newest
    ``occurred_at`` wins) or, the first time a product is picked, by ``get_product``."""

    __tablename__ = "catalog_products"

    product_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    supplier_id: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    category: Mapped[str | None] = mapped_column(String(40), nullable=True)
    price_fen: Mapped[int] = mapped_column(Integer)
    commission_bps: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20))
    available: Mapped[bool] = mapped_column(Boolean)
    image_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    brand: Mapped[str | None] = mapped_column(String(200), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LevelRecalculation(Base):
    """One row per month of sales: a second run for the same month replays ``changes``."""

    __tablename__ = "level_recalculations"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    changes: Mapped[str] = mapped_column(Text)  # JSON list of {shop_id, old_level, ...}
    shops_considered: Mapped[int] = mapped_column(Integer, default=0)
    ran_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Suspension(Base):
    """The history of suspensions: one row per decision (suspend or reinstate) on a shop or a
    member, with the admin's reason. Rows are only added."""

    __tablename__ = "suspensions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(10))  # shop | member
    subject_id: Mapped[int] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(10))  # suspend | reinstate
    reason: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(60))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
