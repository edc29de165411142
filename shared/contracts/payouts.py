"""RPC payloads of the payouts service (the gateway validates its request bodies with the same
models, so the OpenAPI document shows them). Money is integer fen, rates basis points."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared import clock

MONTH_PATTERN = r"^(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])$"  # 1970–2999


class SettlementRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    as_of: str | None = Field(None, description="ISO-8601 instant; default: the platform clock")

    @field_validator("as_of")
    @classmethod
    def _instant(cls, value):
        if value is None:
            return value
        try:
            clock.parse(value)
        except (TypeError, ValueError):
            raise ValueError("as_of must be an ISO-8601 instant") from None
        return value


class PayoutRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    suppliers: bool = Field(True, description="also pay suppliers their settled payable")


class MonthIn(BaseModel):
    month: str = Field(..., pattern=MONTH_PATTERN, description="YYYY-MM")


class SandboxConfigIn(BaseModel):
    """Test mode: make the sandbox payout provider fail or time out (``"keeper:12,supplier:*"``);
    ``fail_times`` 0 = on every attempt, N = on the first N attempts of each transfer."""

    model_config = ConfigDict(extra="forbid")
    fail: str | None = None
    timeout: str | None = None
    fail_times: int = Field(0, ge=0)


class EarningsLine(BaseModel):
    order_id: int
    paid_fen: int
    commission_bps: int
    bonus_bps: int
    commission_fen: int
    refunded_fen: int
    reversed_commission_fen: int
    net_commission_fen: int
    status: str


class EarningsOut(BaseModel):
    shop_id: int
    pending_fen: int
    settleable_fen: int
    paid_fen: int
    lines: list[EarningsLine]


class SettledOrder(BaseModel):
    order_id: int
    shop_id: int | None
    supplier_id: int | None
    amount_fen: int
    sales_fen: int


class SettlementRunOut(BaseModel):
    settlement_id: int
    as_of: str
    settled: list[SettledOrder]
    count: int
    total_fen: int


class PayoutLine(BaseModel):
    shop_id: int
    payout_id: int
    amount_fen: int
    status: str


class PayoutRunOut(BaseModel):
    run_id: int
    payouts: list[PayoutLine]
    total_fen: int
    supplier_total_fen: int = 0


class HoldOut(BaseModel):
    hold_id: int
    reason: str = Field(..., description="refund_open, fraud:<rule>, suspended, ...")
    ref: str | None = None
    since: str | None = None
    note: str | None = None


class SupplierLine(BaseModel):
    order_id: int
    shop_id: int | None
    paid_fen: int
    refunded_fen: int
    commission_fen: int
    fee_fen: int
    payable_fen: int
    status: str = Field(..., description="pending | held | settled | refunded")
    holds: list[HoldOut]


class SupplierBalanceOut(BaseModel):
    supplier_id: int
    pending_fen: int
    settleable_fen: int
    paid_fen: int
    held_fen: int
    negative_balance: dict | None = Field(
        None, description="{owed_fen, cause, netted_against} when a clawback followed a payout"
    )
    lines: list[SupplierLine]
