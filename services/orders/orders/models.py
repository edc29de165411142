"""SQLAlchemy 2 tables of the orders service (its own database; nobody else reads it)."""

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


class Base(DeclarativeBase):
    metadata = service_metadata()


TS = DateTime(timezone=True)


class Checkout(Base):
    """One checkout call; ``key`` (client checkout key / Idempotency-Key) replays its orders."""

    __tablename__ = "checkouts"
    __table_args__ = (UniqueConstraint("buyer_id", "key", name="uq_checkouts_buyer_key"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    buyer_id: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(TS)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    checkout_id: Mapped[str] = mapped_column(String(36), index=True)
    buyer_id: Mapped[int] = mapped_column(BigInteger, index=True)
    supplier_id: Mapped[int] = mapped_column(BigInteger, index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    paid_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    # attribution
    shop_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    share_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    shop_number: Mapped[str | None] = mapped_column(String(20), nullable=True)
    keeper_member_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    self_referral: Mapped[bool] = mapped_column(Boolean, default=False)
    attribution_source: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # delivery
    address_name: Mapped[str] = mapped_column(String(100))
    address_phone: Mapped[str] = mapped_column(String(40))
    address_line: Mapped[str] = mapped_column(String(500))
    # the buyer's fingerprints (shared.fingerprints), sent with order_paid for fraud rules
    buyer_phone_fp: Mapped[str | None] = mapped_column(String(32), nullable=True)
    buyer_address_fp: Mapped[str | None] = mapped_column(String(32), nullable=True)
    buyer_visitor_fp: Mapped[str | None] = mapped_column(String(32), nullable=True)
    carrier: Mapped[str | None] = mapped_column(String(100), nullable=True)
    tracking_no: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # stock: reservation id at the catalog and what is still owed to it
    # (none | reserved | to_commit | committed | to_release | released)
    reservation_id: Mapped[str] = mapped_column(String(64))
    stock_state: Mapped[str] = mapped_column(String(20), default="none", index=True)
    # where the order's stock came from: ``pool`` (orders' own pool of units the catalog
    # granted, taken in the checkout's transaction) or ``catalog`` (a reservation at the
    # catalog, made by RPC: orders placed before the pool existed)
    stock_from: Mapped[str] = mapped_column(String(10), default="catalog", server_default="catalog")
    payment_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(TS)
    expires_at: Mapped[datetime] = mapped_column(TS, index=True)
    paid_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    shipped_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    received_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)

    items: Mapped[list["OrderItem"]] = relationship(
        order_by="OrderItem.id", lazy="selectin", cascade="all, delete-orphan"
    )


class OrderItem(Base):
    """A line, snapshotted at checkout (price, commission rate, product facts)."""

    __tablename__ = "order_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_fen: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    commission_bps: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(500))
    category: Mapped[str | None] = mapped_column(String(50), nullable=True)
    brand: Mapped[str | None] = mapped_column(String(200), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    image_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    # the attributing shop had selected this product at checkout (None: no shop)
    carried: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class OrderHistory(Base):
    """Every transition: from, to, who (role:id or system), when."""

    __tablename__ = "order_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(60))
    at: Mapped[datetime] = mapped_column(TS)
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)


class Payment(Base):
    """A payment the provider reported: (provider, payment id) belongs to ONE order."""

    __tablename__ = "payments"
    payment_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    order_id: Mapped[int] = mapped_column(Integer, index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    # applied | refund_due | refunded | failed; indexed: the timer looks up refund_due each tick
    outcome: Mapped[str] = mapped_column(String(20), index=True)
    received_at: Mapped[datetime] = mapped_column(TS)
    payload: Mapped[dict] = mapped_column(JSON)


class PaymentConflict(Base):
    """A callback presenting a payment id that already belongs to another order: refused
    (409 ``payment_id_conflict``) and kept here for operators."""

    __tablename__ = "payment_conflicts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(40))
    payment_id: Mapped[str] = mapped_column(String(100), index=True)
    order_id_claimed: Mapped[int] = mapped_column(BigInteger)
    order_id_owning: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(TS)
    raw_callback: Mapped[str] = mapped_column(Text)


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (Index("ix_refunds_status_decide_by", "status", "decide_by"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    supplier_id: Mapped[int] = mapped_column(BigInteger, index=True)
    buyer_id: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))  # requested | approved | rejected
    order_status_at_request: Mapped[str] = mapped_column(String(20))
    provider_refund_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(TS)
    decided_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    # the supplier decides by then (``domain.refund_decide_by``); past it the timer approves
    # or escalates (``refund_timeout_action``); ``escalated_at``: in the platform's queue
    decide_by: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    escalated_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)

    items: Mapped[list["RefundItem"]] = relationship(
        order_by="RefundItem.id", lazy="selectin", cascade="all, delete-orphan"
    )


class RefundItem(Base):
    """What a refund refunds of one order item (the refund's items sum to its amount)."""

    __tablename__ = "refund_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    refund_id: Mapped[int] = mapped_column(ForeignKey("refunds.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class Inquiry(Base):
    """Legacy: buyers' questions from before the messages service owned threads. Nothing
    writes it any more; kept (not dropped) so no question asked before the move is lost."""

    __tablename__ = "inquiries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    buyer_id: Mapped[int] = mapped_column(BigInteger)
    topic: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    routed_to: Mapped[str] = mapped_column(String(20))
    order_status: Mapped[str] = mapped_column(String(20))
    shop_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    keeper_member_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    supplier_id: Mapped[int] = mapped_column(BigInteger, index=True)
    created_at: Mapped[datetime] = mapped_column(TS)


class CartItem(Base):
    __tablename__ = "cart_items"
    buyer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    product_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(TS)


class ProductView(Base):
    """Orders' read model of catalog products: what checkout prices and snapshots from. Fed by
    catalog's ``product_listed/changed/delisted`` (the newest ``occurred_at`` wins; a snapshot
    applied twice changes nothing) and, for a product no event has brought yet, by one
    ``get_products`` batch (``handlers.products``). Stock is not taken from it: orders' pool
    (``StockPool``) is what a checkout takes, and the catalog empties it before a stock
    change, a delisting or a suspension (``reclaim_stock``)."""

    __tablename__ = "product_views"

    product_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    supplier_id: Mapped[int] = mapped_column(BigInteger)
    title: Mapped[str] = mapped_column(String(500))
    category: Mapped[str | None] = mapped_column(String(50), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    brand: Mapped[str | None] = mapped_column(String(200), nullable=True)
    image_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    price_fen: Mapped[int] = mapped_column(BigInteger)
    commission_bps: Mapped[int] = mapped_column(Integer)
    available: Mapped[bool] = mapped_column(Boolean)
    occurred_at: Mapped[datetime] = mapped_column(TS)


class StockPool(Base):
    """Units of a product the catalog granted to orders and no order holds yet: a checkout
    takes its lines from here in its own transaction (``handlers.stock.quote_and_take``); a
    cancelled or expired order gives them back here. The catalog counts them as
    ``allotted``."""

    __tablename__ = "stock_pool"
    product_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    units: Mapped[int] = mapped_column(Integer)
    # the catalog's price when it last answered a grant: units are taken only at this price
    # (the catalog empties the pool when the price changes: ``reclaim_stock``)
    price_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(TS)


class StockGrant(Base):
    """One line of a grant asked of the catalog (``grant_stock``): recorded as ``asked``
    before the call, ``applied`` (its units added to the pool) once, or ``revoked`` when the
    catalog took the product's units back before the answer was applied (a late answer is
    then dropped). The timer asks again for grants left ``asked`` (the catalog answers a
    repeated grant id with what it granted the first time)."""

    __tablename__ = "stock_grants"
    __table_args__ = (Index("ix_stock_grants_state_created", "state", "created_at"),)
    grant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    product_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    wanted: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(12))  # asked | applied | revoked
    created_at: Mapped[datetime] = mapped_column(TS)


class StockReclaim(Base):
    """The catalog took back a product's free pool units (``reclaim_stock``): the answer,
    kept so a repeated reclaim id answers the same."""

    __tablename__ = "stock_reclaims"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    answer: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(TS)
