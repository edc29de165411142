"""SQLAlchemy 2 tables of the catalog service (its own database; nobody else reads it)."""

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
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import service_metadata


class Base(DeclarativeBase):
    metadata = service_metadata()


class Supplier(Base):
    """A supplier (供货商): qualifies, pays its deposit, lists products, owns after-sales."""

    __tablename__ = "suppliers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    registered_capital_fen: Mapped[int] = mapped_column(BigInteger)
    general_taxpayer: Mapped[bool] = mapped_column(Boolean)
    brand_authorization_levels: Mapped[int | None] = mapped_column(Integer, nullable=True)
    purchase_records: Mapped[bool] = mapped_column(Boolean, default=False)
    categories: Mapped[str] = mapped_column(Text, default="")  # comma-separated codes
    phone: Mapped[str] = mapped_column(String(40))
    wechat: Mapped[str | None] = mapped_column(String(80), nullable=True)
    email: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(20))  # pending_deposit | active | suspended
    deposit_required_fen: Mapped[int] = mapped_column(BigInteger)
    deposit_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Product(Base):
    """A product. ``supplier_active`` mirrors the supplier's status (same database, changed in
    the same unit of work as the supplier) so browsing reads one table."""

    __tablename__ = "products"
    __table_args__ = (
        # browse: listed, in stock, supplier active, optional category, newest first
        Index("ix_products_browse", "status", "supplier_active", "category", "id"),
        Index("ix_products_browse_all", "status", "supplier_active", "id"),
        Index("ix_products_browse_sales", "status", "supplier_active", "units_sold", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(60))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    brand: Mapped[str | None] = mapped_column(String(200), nullable=True)
    price_fen: Mapped[int] = mapped_column(BigInteger)
    stock: Mapped[int] = mapped_column(Integer)
    commission_bps: Mapped[int] = mapped_column(Integer)
    market_commission_bps: Mapped[int] = mapped_column(Integer)
    reference_price_fen: Mapped[int] = mapped_column(BigInteger)
    image_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    image_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(20))  # listed | delisted
    # the facts keepers answer buyers with (PUT /products/{id}/faq): [{q, a}], {name: value}
    faq: Mapped[list | None] = mapped_column(JSON, nullable=True)
    specs: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    after_sales_policy: Mapped[str | None] = mapped_column(Text, nullable=True)
    supplier_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # units sold (committed stock, less stock given back): the ``sort=sales`` order
    units_sold: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # units granted to orders' pool (``grant_stock``) and not yet sold or given back; ``stock``
    # is what the catalog itself can still give out. Buyers see ``stock + allotted``
    # (``domain.displayed_stock``).
    allotted: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # the gallery, in order, the first is the cover: [{"url": ...} | {"ref": ...}] (None: only
    # the single ``image_url``/``image_ref``)
    images: Mapped[list | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Image(Base):
    """An uploaded image, stored once per content hash (sha256 hex)."""

    __tablename__ = "images"

    ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(40))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Reservation(Base):
    """Stock held for an order until it is paid (committed) or cancelled/expired (released).
    ``expires_at``: when the sweep gives held stock back (``domain.hold_expires_at``)."""

    __tablename__ = "reservations"
    __table_args__ = (Index("ix_reservations_status_expires", "status", "expires_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))  # held | committed | released | returned
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReservationLine(Base):
    __tablename__ = "reservation_lines"

    reservation_id: Mapped[str] = mapped_column(ForeignKey("reservations.id"), primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)


class StockGrant(Base):
    """Units granted to orders' pool by one ``grant_stock`` call (``grant_id``, the caller's),
    one row per product granted (a product granted nothing has no row). ``granted``: the
    units are out at orders (in flight or in its pool); ``settled``: a reclaim found orders
    had applied it; ``revoked``: a reclaim found orders had not, and orders discards its late
    reply (the units came back)."""

    __tablename__ = "stock_grants"
    __table_args__ = (Index("ix_stock_grants_product_status", "product_id", "status"),)

    grant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))  # granted | settled | revoked
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StockReclaim(Base):
    """A call to orders' ``reclaim_stock`` the catalog owes before a stock change (a supplier's
    new stock, a delisting, a suspension): recorded ``owed`` in its own transaction before the
    call, ``applied`` (with orders' ``answer``) once its units are back. An owed one whose call
    failed is retried by a timer with the same id (orders answers a repeat as the first)."""

    __tablename__ = "stock_reclaims"
    __table_args__ = (Index("ix_stock_reclaims_status_created", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    product_ids: Mapped[list] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))  # owed | applied
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    answer: Mapped[dict | None] = mapped_column(JSON, nullable=True)
