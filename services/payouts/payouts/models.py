"""SQLAlchemy 2 tables of the payouts service (its own database; nobody else reads it).

* ``journal``      the append-only double-entry ledger (one row per posting; an entry is the
                   postings sharing ``entry_id``; never updated, never deleted)
* ``order_facts``  what the events told us about each order, and how much of it the journal
                   already reflects (so every delta is (re)computed idempotently from facts)
* ``level_history`` each shop's level bonus and since when (from ``level_changed``)
* ``settlements``, ``payout_runs``, ``payouts`` the runs and one row per transfer
* ``sandbox_transfers`` the sandbox payout provider's own record (stands in for the provider)
* ``holds``        why an order's accrual may not settle (or be paid) yet: one row per hold,
                   released with a decision, never deleted (``handlers/holds.py``)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import service_metadata


class Base(DeclarativeBase):
    metadata = service_metadata()


class JournalPosting(Base):
    __tablename__ = "journal"
    __table_args__ = (
        UniqueConstraint("entry_id", "account", "party_id", name="uq_journal_entry_account_party"),
        # balances, payout runs and monthly statements all read (account, party[, period])
        Index("ix_journal_account_party", "account", "party_id", "posted_at"),
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    entry_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    account: Mapped[str] = mapped_column(String(32))
    party_id: Mapped[int] = mapped_column(BigInteger)  # shop / supplier id, 0 for the platform
    order_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OrderFacts(Base):
    __tablename__ = "order_facts"
    __table_args__ = (
        Index("ix_order_facts_shop_id", "shop_id"),
        Index("ix_order_facts_settlement_id", "settlement_id"),
        # only the orders still waiting for settlement (settling drops them from the index)
        Index(
            "ix_order_facts_unsettled",
            "after_sales_until",
            postgresql_where=text("settled_at IS NULL"),
            sqlite_where=text("settled_at IS NULL"),
        ),
    )
    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    shop_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    supplier_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    buyer_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    self_referral: Mapped[bool] = mapped_column(Boolean, default=False)
    # order_paid
    accrued: Mapped[bool] = mapped_column(Boolean, default=False)
    paid_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lines_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    commission_bps: Mapped[int] = mapped_column(Integer, default=0)
    bonus_bps: Mapped[int] = mapped_column(Integer, default=0)
    commission_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    fee_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    supplier_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    # order_refunded (cumulative; the largest total seen wins, so reordering is harmless)
    refunded_total_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    reversed_commission_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    reversed_fee_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    reversed_supplier_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    # each order_refunded seen: {"<refund_id>": {"<product_id>": fen, ...} | null}
    refunds_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # order_received / order_completed (after_sales_until: orders' window, sent with the receipt)
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    after_sales_until: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # settlement
    settlement_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    settled_commission_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    settled_sales_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class LevelHistory(Base):
    __tablename__ = "level_history"
    __table_args__ = (Index("ix_level_history_shop", "shop_id", "effective_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shop_id: Mapped[int] = mapped_column(BigInteger)
    level: Mapped[str] = mapped_column(String(20))
    bonus_bps: Mapped[int] = mapped_column(Integer)
    month: Mapped[str] = mapped_column(String(7))
    effective_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Settlement(Base):
    __tablename__ = "settlements"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    count: Mapped[int] = mapped_column(Integer, default=0)
    total_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class PayoutRun(Base):
    __tablename__ = "payout_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    total_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class Payout(Base):
    """One transfer to one party; written ``pending`` before the provider is called."""

    __tablename__ = "payouts"
    __table_args__ = (
        Index("ix_payouts_party", "party_kind", "party_id", "status"),
        Index("ix_payouts_status", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(Integer)  # the run that created it
    paid_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    party_kind: Mapped[str] = mapped_column(String(10))  # keeper | supplier
    party_id: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10))  # pending | paid | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_ref: Mapped[str | None] = mapped_column(String(80), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SandboxTransfer(Base):
    """The sandbox provider's book of transfers, by idempotency key (first result wins)."""

    __tablename__ = "sandbox_transfers"
    idempotency_key: Mapped[str] = mapped_column(String(80), primary_key=True)
    party_kind: Mapped[str] = mapped_column(String(10))
    party_id: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Hold(Base):
    """A hold on an order's accrual (``refund_open``, ``fraud:<rule>``, ``suspended``, ...):
    while one is open (``released_at`` NULL) the order does not settle and, if it settled
    already, its amounts are not paid. ``ref`` tells holds of one reason apart (the refund's
    id); ``decision`` / ``decided_by`` record how it ended. Rows are never deleted."""

    __tablename__ = "holds"
    __table_args__ = (
        Index("ix_holds_order", "order_id", "reason", "ref"),
        Index(
            "ix_holds_open",
            "order_id",
            postgresql_where=text("released_at IS NULL"),
            sqlite_where=text("released_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(64))
    ref: Mapped[str] = mapped_column(String(64), default="")
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decision: Mapped[str | None] = mapped_column(String(32), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
