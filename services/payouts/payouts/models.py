"""SQLAlchemy 2 tables of the payouts service (its own database; nobody else reads it).

* ``journal``      the append-only double-entry ledger (one row per posting; an entry is the
                   postings sharing ``entry_id``; never updated, never deleted)
* ``order_facts``  what the events told us about each order, and how much of it the journal
                   already reflects (so every delta is (re)computed idempotently from facts)
* ``level_history`` each shop's level bonus and since when (from ``level_changed``)
* ``settlements``, ``payout_runs``, ``payouts`` the runs and one row per transfer
* ``sandbox_transfers`` the sandbox payout provider's own record (stands in for the provider)
* ``payout_settings`` a keeper's payout mode (auto | manual), ``payee_accounts`` where a member
  or supplier is paid and ``payee_changes`` every change of it, ``withdrawals`` keepers' own
  payout requests
* ``accrual_holds`` holds on an order's accrual (``refund_open``, fraud review, suspension), each
  released with its decision, never deleted (``handlers/holds.py``)
* ``fraud_fingerprints``, ``shop_standing`` the read models the fraud and suspension rules use
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
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
    # an admin forfeited the commission (fraud review): the order earns nothing from then on
    commission_forfeited: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )


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
    # income tax withheld from a keeper's payout (amount_fen is the gross; the net is sent)
    withheld_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class SandboxTransfer(Base):
    """The sandbox provider's book of transfers, by idempotency key (first result wins)."""

    __tablename__ = "sandbox_transfers"
    idempotency_key: Mapped[str] = mapped_column(String(80), primary_key=True)
    party_kind: Mapped[str] = mapped_column(String(10))
    party_id: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PayoutSettings(Base):
    """A keeper's payout preference (``auto``: paid by runs; ``manual``: withdraws). The row is
    also what a withdrawal locks, so a shop's withdrawals are checked one at a time."""

    __tablename__ = "payout_settings"
    shop_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    payout_mode: Mapped[str] = mapped_column(String(10), default="auto")
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class PayeeAccount(Base):
    """Where a member (keeper) or a supplier is paid: Alipay or a bank card, in the name of the
    identity record."""

    __tablename__ = "payee_accounts"
    party_kind: Mapped[str] = mapped_column(String(10), primary_key=True)  # member | supplier
    party_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    channel: Mapped[str] = mapped_column(String(10))  # alipay | bank
    account: Mapped[str] = mapped_column(String(200))
    real_name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PayeeChange(Base):
    """Every registration or change of a payee account (the account masked)."""

    __tablename__ = "payee_changes"
    __table_args__ = (Index("ix_payee_changes_party", "party_kind", "party_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    party_kind: Mapped[str] = mapped_column(String(10))
    party_id: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(10))  # registered | changed
    channel: Mapped[str] = mapped_column(String(10))
    account_masked: Mapped[str] = mapped_column(String(20))
    real_name: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Withdrawal(Base):
    """A keeper's request to be paid now: ``requested`` (its amount in transit) → ``paid`` or
    ``failed`` (retryable; every attempt sends the same provider idempotency key)."""

    __tablename__ = "withdrawals"
    __table_args__ = (Index("ix_withdrawals_shop", "shop_id", "created_at"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    shop_id: Mapped[int] = mapped_column(BigInteger)
    member_id: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # gross: the income the tax is on
    fee_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    withheld_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    net_fen: Mapped[int] = mapped_column(BigInteger)  # what the provider transfers
    status: Mapped[str] = mapped_column(String(10))  # requested | paid | failed
    business_day: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(10))
    account_masked: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_ref: Mapped[str | None] = mapped_column(String(80), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AccrualHold(Base):
    """A hold on an order's accrual: while one is open (``released_at`` NULL) the order is not
    settled and, if it settled already, its amounts are not paid. ``reason``: ``fraud:<rule>``
    / ``suspended`` (issue 13), ``refund_open`` (issue 16); ``ref`` tells holds of one reason
    apart (the refund's id; empty otherwise); ``detail`` says what matched. Closing one records
    the decision (``cleared``, ``forfeited``, ``released``, ``approved``, ``rejected``), who
    took it and why: the holds are the decisions' history."""

    __tablename__ = "accrual_holds"
    __table_args__ = (
        Index("ix_accrual_holds_order", "order_id", "released_at"),
        Index("ix_accrual_holds_shop", "shop_id", "released_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(BigInteger)
    shop_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reason: Mapped[str] = mapped_column(String(40))
    ref: Mapped[str] = mapped_column(String(64), default="", server_default="")
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decision: Mapped[str | None] = mapped_column(String(20), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class FraudFingerprint(Base):
    """What payouts knows about people, as salted fingerprints (``shared.fingerprints``): a
    buyer's delivery phone / address / visitor on each paid order (``source`` order), a
    keeper's registered phone from shop events (``profile``), a payee account (``payee``)."""

    __tablename__ = "fraud_fingerprints"
    __table_args__ = (
        Index("ix_fraud_fingerprints_member", "member_id", "kind"),
        Index("ix_fraud_fingerprints_shop", "shop_id", "kind", "fingerprint", "seen_at"),
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    member_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(10))  # phone | address | visitor | payee | member
    fingerprint: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(10))  # order | profile | payee
    order_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    shop_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ShopStanding(Base):
    """Shop's suspension of each shop, as its last ``shop_suspended`` / ``shop_reinstated``
    said (the newest ``occurred_at`` wins, so reordered events are harmless)."""

    __tablename__ = "shop_standing"
    shop_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    suspended: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
