"""RPC and HTTP payloads of the share service (owned by share; the gateway validates request
bodies with the same models, so OpenAPI shows them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

VISIT_KINDS = ("landing", "scan", "resolve")


class ShareIn(BaseModel):
    """POST /api/v1/shares."""

    model_config = ConfigDict(extra="forbid")
    shop_id: int = Field(gt=0, le=2**31 - 1)
    product_id: int = Field(gt=0, le=2**31 - 1)
    fresh: bool = Field(
        False,
        description="true: a new share (new code and link) even when "
        "this shop already shared this product",
    )


class CreateShare(ShareIn):
    """share.create_share(member_id, shop_id, product_id, fresh)."""

    member_id: int = Field(gt=0)


class PosterLink(BaseModel):
    style: str
    url: str


class ShareOut(BaseModel):
    id: str
    code: str
    display_code: str
    url: str
    qr_url: str | None = Field(None, description="what the posters' QR code carries (?src=qr)")
    copy_text: str
    copy_comment: str
    posters: list[PosterLink]
    shop_id: int
    shop_number: str | None = None
    product_id: int


class ResolveQuery(BaseModel):
    code: str = Field(
        min_length=1,
        max_length=4000,
        description="the share code, or a whole pasted message containing it",
    )


class ResolveOut(BaseModel):
    share_id: str
    shop_id: int
    shop_number: str | None
    product_id: int
    code: str
    url: str | None = None
    available: bool | None = None


class StatsQuery(BaseModel):
    since: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="first day")
    until: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="last day")


class VisitIn(BaseModel):
    """One visit as the gateway reports it to share.record_visits (in batches)."""

    share_id: str = Field(max_length=36)
    shop_id: int
    product_id: int
    visitor_id: str | None = Field(None, max_length=64)
    client: str | None = Field(None, max_length=64, description="client address")
    kind: Literal["landing", "scan", "resolve"]
    new_visitor: bool = Field(False, description="the visitor cookie was absent (just issued)")
    age_ms: int = Field(0, ge=0, description="how long ago the visit happened")
