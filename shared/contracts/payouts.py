"""RPC payloads of the payouts service (the gateway validates its request bodies with the same
models, so the OpenAPI document shows them). Money is integer fen, rates basis points."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared import clock
from shared.text import Text

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


# --- payee accounts, withdrawals, payout settings (issue 16) -----------------------------------
class PayeeIn(BaseModel):
    """``PUT /api/v1/me/payee``: where the member or supplier is paid. ``real_name`` must match
    the identity record (422 ``payee_name_mismatch``); answers show the account's last 4."""

    model_config = ConfigDict(extra="forbid")
    channel: Literal["alipay", "bank"]
    account: str = Field(
        ...,
        min_length=1,
        max_length=64,
        description="Alipay: mainland mobile number or e-mail; bank: card number, 12–19 digits",
    )
    real_name: Text(100, min_chars=1) = Field(
        ..., description="the account holder's name, as on the identity record"
    )


class WithdrawalIn(BaseModel):
    """``POST /api/v1/shops/{id}/withdrawals``."""

    model_config = ConfigDict(extra="forbid")
    amount_fen: int = Field(..., gt=0, le=10**12, description="gross amount, integer fen")


class PayoutSettingsIn(BaseModel):
    """``PUT /api/v1/shops/{id}/payout-settings``: ``auto`` (paid by payout runs, the default)
    or ``manual`` (the keeper withdraws; runs skip the shop)."""

    model_config = ConfigDict(extra="forbid")
    payout_mode: Literal["auto", "manual"]


class HoldsQuery(BaseModel):
    """``GET /api/v1/admin/holds?status=open&shop_id=&limit=``: holds on accruals."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["open", "closed", "all"] = "open"
    shop_id: int | None = Field(None, ge=1, le=2**31 - 1)
    limit: int = Field(100, ge=1, le=1000)


class HoldDecisionIn(BaseModel):
    """``POST /api/v1/admin/holds/{id}/clear|forfeit``: the admin's recorded reason."""

    model_config = ConfigDict(extra="forbid")
    reason: Text(max_chars=500, min_chars=1) = Field(
        ..., description="why (recorded in the ledger's history)"
    )


# --- holds, supplier money (issue 16) ----------------------------------------------------------
class HoldOut(BaseModel):
    """An open hold on an order's accrual, as earnings and supplier lines show it."""

    hold_id: int
    reason: str = Field(..., description="refund_open, fraud:<rule>, suspended, ...")
    ref: str | None = None
    since: str | None = None
    detail: dict | None = Field(None, description="what matched (fraud), the refund (refund_open)")


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
