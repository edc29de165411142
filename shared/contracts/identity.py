"""Payloads of the identity service (sign-in by phone and one-time code, refresh tokens).

The gateway validates request bodies with these models (so the OpenAPI document shows them) and
the identity service validates its RPC payloads with the same ones. The phone pattern and every
number (code length, expiry, attempts, rate limits) live in ``services/identity/identity/domain.py``
and come from configuration.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["member", "supplier"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OtpIn(_In):
    """``POST /api/v1/auth/otp``: send a one-time code to this phone."""

    phone: str = Field(..., min_length=1, max_length=40, description="mainland mobile number")
    role: Role = Field("member", description="who signs in: a member or a supplier")


class RequestCode(OtpIn):
    """RPC ``identity.request_code``: the gateway adds the client address (rate limits)."""

    client: str | None = Field(None, max_length=64, description="the caller's address")


class LoginIn(_In):
    """``POST /api/v1/auth/login``: the code sent to the phone. A member whose phone has no
    account yet registers by sending a ``nickname`` with the code (suppliers register with
    their qualifications at ``POST /api/v1/suppliers``)."""

    phone: str = Field(..., min_length=1, max_length=40)
    code: str = Field(..., min_length=1, max_length=12, description="the 6-digit one-time code")
    role: Role = "member"
    nickname: str | None = Field(
        None, min_length=1, max_length=200, description="new members only: registers the phone"
    )


class Login(LoginIn):
    """RPC ``identity.login``."""

    client: str | None = Field(None, max_length=64)


class RefreshIn(_In):
    """``POST /api/v1/auth/refresh``: rotate a refresh token."""

    refresh_token: str = Field(..., min_length=1, max_length=200)


class LogoutIn(_In):
    """``POST /api/v1/auth/logout``: revoke this refresh token's session (absent: every session
    of the caller)."""

    refresh_token: str | None = Field(None, min_length=1, max_length=200)


class MessagesQuery(BaseModel):
    """``GET /api/v1/admin/sandbox/messages?to=&limit=``."""

    to: str | None = Field(None, max_length=40)
    limit: int = Field(50, ge=1, le=500)


class SessionOut(BaseModel):
    """What login and refresh answer (the gateway adds the access ``token``)."""

    role: Role
    id: int
    refresh_token: str
    registered: bool = False
