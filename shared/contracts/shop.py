"""Payloads of the shop service (members 掌柜, shops 小铺, selections, keeper levels).

The gateway validates request bodies with these models (so the OpenAPI document shows them) and
the shop service validates its RPC payloads with the same ones. Field limits here are coarse
guards; the platform rules (name length in characters, forbidden words, the phone pattern,
reason length) live in ``services/shop/shop/domain.py`` and come from configuration.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.text import Text

# what ``shop.domain.normalize_phone`` accepts: 11 digits 1[3-9]xxxxxxxxx, optionally +86/0086
# in front, spaces and dashes anywhere between
MOBILE_PATTERN = r"^(\+86|0086)?[ -]*1[ -]*[3-9]([ -]*[0-9]){9}[ -]*$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class MemberIn(_In):
    """``POST /api/v1/members`` / RPC ``register_member(data)``."""

    nickname: Text(200, min_chars=1) = Field(..., description="display nickname")
    phone: str = Field(
        ...,
        max_length=40,
        pattern=MOBILE_PATTERN,
        description="mainland mobile number, 11 digits: 1[3-9]xxxxxxxxx (+86, spaces, dashes ok)",
    )
    # Only the sandbox identity adapter in test mode takes these; outside test mode the score
    # and real-name status come from the identity adapter and declared values are ignored.
    credit_score: int | None = Field(
        None, ge=0, le=1000, description="test mode only: declared Sesame-credit-like score"
    )
    real_name_verified: bool | None = Field(
        None, description="test mode only: declared real-name (实名) verification"
    )
    real_name: Text(100, min_chars=1) | None = Field(
        None,
        description="test mode only: declared real name on the identity record (sandbox); "
        "payee accounts must be in this name",
    )


class ShopIn(_In):
    """``POST /api/v1/shops`` / RPC ``open_shop(member_id, data)``."""

    name: Text(200, min_chars=1) = Field(
        ..., description="shop name without the platform suffix (added automatically)"
    )
    description: Text(5000, multiline=True) | None = None
    logo_url: str | None = Field(None, max_length=2000, description="http(s) URL of the logo")


class ShopPatch(_In):
    """``PATCH /api/v1/shops/{id}``: only the fields present change (same rules as opening)."""

    name: Text(200, min_chars=1) | None = None
    description: Text(5000, multiline=True) | None = None
    logo_url: str | None = Field(None, max_length=2000)


class SelectionIn(_In):
    """``PUT /api/v1/shops/{id}/products/{product_id}``: the keeper's recommendation reason."""

    reason: Text(5000, multiline=True) | None = Field(
        None, description="plain text; escaped by every page that shows it"
    )


class ShopQuotaIn(_In):
    """``POST /api/v1/admin/members/{id}/shop-quota``: how many shops this member may own."""

    quota: int = Field(..., ge=1, le=100)


class RecalculateLevelsIn(_In):
    """``POST /api/v1/admin/levels/recalculate``: the month of settled sales to use."""

    month: str = Field(..., pattern=r"^(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])$", description="YYYY-MM")


class PublicShopQuery(BaseModel):
    """``GET /api/v1/shops/by-number/{n}?limit=&cursor=`` paginates the available products."""

    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = None


class SuspensionIn(_In):
    """``POST /api/v1/admin/shops/{id}/suspend|reinstate`` and
    ``/api/v1/admin/members/{id}/suspend|reinstate``: the admin's recorded reason."""

    reason: Text(max_chars=500, min_chars=1) = Field(
        ..., description="why (recorded with the decision)"
    )
