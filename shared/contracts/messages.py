"""Payloads of the messages service (conversation threads and notifications).

The gateway validates request bodies with these models (so the OpenAPI document shows them) and
the messages service validates its RPC payloads with the same ones. Who may read or post is
decided by the messages service against the thread's parties.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.text import Text

Topic = Literal["product", "shipping", "refund", "other"]
Channel = Literal["sms", "wechat", "email"]
DEFAULT_CHANNELS: tuple[Channel, ...] = ("sms",)
ThreadStatus = Literal["open", "answered", "forwarded", "escalated", "closed"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderThreadIn(_In):
    """``POST /api/v1/orders/{id}/inquiries``: a buyer's question about a paid order."""

    topic: Topic
    text: Text(max_chars=2000, min_chars=1, multiline=True)
    product_id: int | None = Field(
        None, ge=1, le=2**31 - 1, description="the item asked about (default: the first item)"
    )


class PreSaleThreadIn(_In):
    """``POST /api/v1/inquiries``: a question before buying, from a share or a shop."""

    share_code: str | None = Field(
        None, max_length=500, description="the share code (口令) as pasted; text around it is fine"
    )
    shop_number: str | None = Field(None, max_length=20, description="the shop number (店铺号)")
    product_id: int = Field(..., ge=1, le=2**31 - 1)
    text: Text(max_chars=2000, min_chars=1, multiline=True)


class MessageIn(_In):
    """``POST /api/v1/inquiries/{id}/messages``."""

    text: Text(max_chars=2000, min_chars=1, multiline=True)


class ForwardIn(_In):
    """``POST /api/v1/inquiries/{id}/forward``: the keeper hands the thread to the supplier."""

    note: Text(max_chars=2000, multiline=True) | None = None


class ThreadQuery(BaseModel):
    """``GET /api/v1/inquiries?as=&status=&limit=&cursor=`` (admin: ``/admin/inquiries``)."""

    model_config = ConfigDict(extra="ignore")
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=100)
    status: ThreadStatus | None = None
    as_: Literal["buyer", "keeper"] | None = Field(None, alias="as")


class Viewer(BaseModel):
    """Who is asking (the gateway passes the token's role and subject)."""

    role: Literal["member", "supplier", "admin"]
    id: str


class PreferencesIn(_In):
    """``PUT /api/v1/me/notification-preferences``."""

    channels: list[Channel] = Field(
        default_factory=lambda: list(DEFAULT_CHANNELS),
        max_length=3,
        description="where to be told; [] = nowhere",
    )
    muted: list[str] = Field(
        default_factory=list, max_length=20, description="notification kinds not to be sent"
    )
    email: str | None = Field(None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    wechat: str | None = Field(None, max_length=100, description="WeChat id / openid")


class SandboxQuery(BaseModel):
    """``GET /api/v1/admin/sandbox/messages?to=&limit=`` (the messages service's half)."""

    to: str | None = Field(None, max_length=200)
    limit: int = Field(50, ge=1, le=500)
