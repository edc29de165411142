"""The shop rules of PRODUCT.md ("Keepers and shops"), in plain Python (no nameko, no SQLAlchemy).

* Opening a shop: credit score >= ``min_credit_score`` (700) and real-name verified.
* Shop names: no forbidden words (旗舰 flagship, 专卖 exclusive store, 官方 official, ...);
  lengths counted in characters; the platform suffix (小铺) is appended to the display name.
* One shop per member unless an admin grants more (``shop_quota``, ``may_own_another_shop``).
* Shop number (店铺号): a random, unguessable 6-digit string ("000123" keeps its zeros).
* A shop picks at most ``pick_limit(rules)`` (1,000) products (``can_pick``), each with an
  optional plain-text recommendation reason.
* A keeper touches only their own shop (``ensure_keeper``; anyone else's is "not found").
* Keeper levels 新晋 newcomer / 资深 senior / 精英 elite / 超级 super from a month's settled
  sales, each with a commission bonus in bps.
* Suspension: an admin may suspend a shop or a keeper (with a recorded reason); a shop is
  suspended while either is (``is_suspended``), shows as ``suspended`` (``shown_status``),
  its public pages answer 410 and a suspended keeper may not open another shop.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.errors import RuleViolation, ValidationFailed, rule
from shared.rules import ConfiguredRules
from shared.text import clean_field, contains_word
from shared.validation import not_found

# --- configuration ------------------------------------------------------------------------------
LEVELS = ("newcomer", "senior", "elite", "super")
LEVEL_LABELS = {"newcomer": "新晋", "senior": "资深", "elite": "精英", "super": "超级"}
DEFAULT_FORBIDDEN_WORDS = ("旗舰", "专卖", "官方", "直营", "特许", "授权", "flagship", "official")


@dataclass(frozen=True)
class ShopRules(ConfiguredRules):
    """Every number of the shop rules, read from ``RULES:`` in config.yml (``from_config``).

    Shop owns the keeper levels: their sales thresholds and their commission bonuses
    (``level_bonus_bps_*``); payouts learns the bonus from ``level_changed.bonus_bps``."""

    min_credit_score: int = 700
    require_real_name: bool = True
    shops_per_member: int = 1
    max_products_per_shop: int = 1000
    name_suffix: str = "小铺"
    name_min_chars: int = 2
    name_max_chars: int = 20
    forbidden_name_words: tuple[str, ...] = DEFAULT_FORBIDDEN_WORDS
    description_max_chars: int = 500
    logo_url_max_chars: int = 500
    reason_max_chars: int = 200
    nickname_max_chars: int = 30
    level_senior_min_sales_fen: int = 100_000
    level_elite_min_sales_fen: int = 1_000_000
    level_super_min_sales_fen: int = 5_000_000
    level_bonus_bps_newcomer: int = 0
    level_bonus_bps_senior: int = 50
    level_bonus_bps_elite: int = 100
    level_bonus_bps_super: int = 200
    level_check_seconds: int = 60
    shop_number_attempts: int = 20

    def bonus_bps(self, level: str) -> int:
        return int(getattr(self, f"level_bonus_bps_{level}"))

    def level_thresholds(self) -> list[tuple[str, int]]:
        """(level, minimum monthly settled sales in fen), highest first."""
        return [
            ("super", self.level_super_min_sales_fen),
            ("elite", self.level_elite_min_sales_fen),
            ("senior", self.level_senior_min_sales_fen),
        ]


# --- members ------------------------------------------------------------------------------------
PHONE_RE = re.compile(r"^1[3-9]\d{9}$")


def normalize_phone(phone: str) -> str:
    """Mainland mobile numbers: 11 digits starting 1[3-9]; spaces/dashes and a +86 prefix are
    tolerated and removed. Raises ValidationFailed otherwise."""
    cleaned = re.sub(r"[\s\-]", "", str(phone or ""))
    if cleaned.startswith("+86"):
        cleaned = cleaned[3:]
    elif cleaned.startswith("0086"):
        cleaned = cleaned[4:]
    if not PHONE_RE.match(cleaned):
        raise ValidationFailed(
            "the phone number is not a mainland mobile number",
            details=[{"field": "phone", "message": "expected 11 digits matching 1[3-9]xxxxxxxxx"}],
        )
    return cleaned


def clean_required(value: str | None, field_name: str, max_chars: int, min_chars: int = 1) -> str:
    """``shared.text.clean_field`` for a field that must be present: never None."""
    text = clean_field(value, field_name, max_chars, required=True, min_chars=min_chars)
    assert text is not None  # required=True raises instead of answering None
    return text


def clean_nickname(nickname: str, rules: ShopRules) -> str:
    return clean_required(nickname, "nickname", rules.nickname_max_chars)


# --- opening a shop -----------------------------------------------------------------------------
def shop_quota(granted: int | None, rules: ShopRules) -> int:
    """How many shops a member may own: what an admin granted, else ``shops_per_member`` (1)."""
    return granted or rules.shops_per_member


def may_own_another_shop(shops_owned: int, quota: int) -> bool:
    """The quota rule; the SQL that takes a quota slot (``shops_owned < quota``) is this test."""
    return shops_owned < quota


def opening_refusals(
    credit_score: int, real_name_verified: bool, shops_owned: int, shop_quota: int, rules: ShopRules
) -> list[dict]:
    """Every reason a member may not open a shop now (empty list: allowed)."""
    reasons = []
    if credit_score < rules.min_credit_score:
        reasons.append(
            rule(
                "credit_score_too_low",
                f"a credit score of at least {rules.min_credit_score} is needed to "
                f"open a shop (yours is {credit_score})",
                required=rules.min_credit_score,
                actual=credit_score,
            )
        )
    if rules.require_real_name and not real_name_verified:
        reasons.append(
            rule("real_name_not_verified", "real-name verification must pass before opening a shop")
        )
    if not may_own_another_shop(shops_owned, shop_quota):
        reasons.append(
            rule(
                "shop_quota_reached",
                f"a member may own {shop_quota} shop(s); an admin can grant more",
                quota=shop_quota,
                owned=shops_owned,
            )
        )
    return reasons


def ensure_may_open(
    credit_score: int,
    real_name_verified: bool,
    shops_owned: int,
    shop_quota: int,
    rules: ShopRules,
    suspended: bool = False,
) -> None:
    reasons = opening_refusals(credit_score, real_name_verified, shops_owned, shop_quota, rules)
    reasons += suspension_refusal(suspended)
    if reasons:
        raise RuleViolation(
            "this member may not open a shop: " + "; ".join(r["message"] for r in reasons),
            details=reasons,
        )


def clean_shop_name(name: str | None, rules: ShopRules) -> str:
    text = clean_required(name, "name", rules.name_max_chars + len(rules.name_suffix))
    base = strip_suffix(text, rules)
    if len(base) < rules.name_min_chars or len(base) > rules.name_max_chars:
        raise ValidationFailed(
            f"the shop name must be {rules.name_min_chars}–{rules.name_max_chars} characters "
            f"long (without the '{rules.name_suffix}' suffix)",
            details=[
                {
                    "field": "name",
                    "message": f"{len(base)} characters; allowed "
                    f"{rules.name_min_chars}–{rules.name_max_chars}",
                }
            ],
        )
    # compared in match form: "官\u200b方", "官 方" and "ＯＦＦＩＣＩＡＬ" are the words too
    found = [w.lower() for w in rules.forbidden_name_words if contains_word(base, (w,))]
    if found:
        raise RuleViolation(
            "the shop name contains words a shop may not use: " + ", ".join(found),
            details=[
                rule(
                    "forbidden_name_word",
                    f"a shop name may not contain '{w}'",
                    field="name",
                    word=w,
                )
                for w in found
            ],
        )
    return base


def strip_suffix(name: str, rules: ShopRules) -> str:
    suffix = rules.name_suffix
    if suffix and name.endswith(suffix) and len(name) > len(suffix):
        return name[: -len(suffix)].rstrip()
    return name


def display_name(name: str, rules: ShopRules) -> str:
    """The platform appends its brand suffix: "阿花的" → "阿花的小铺" (never twice)."""
    return name if name.endswith(rules.name_suffix) else name + rules.name_suffix


def clean_description(value: str | None, rules: ShopRules) -> str | None:
    return clean_field(value, "description", rules.description_max_chars, multiline=True)


_URL_RE = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


def clean_logo_url(value: str | None, rules: ShopRules) -> str | None:
    text = clean_field(value, "logo_url", rules.logo_url_max_chars)
    if text is not None and not _URL_RE.match(text):
        raise ValidationFailed(
            "the logo must be an http(s) URL",
            details=[{"field": "logo_url", "message": "expected http(s) URL"}],
        )
    return text


def new_shop_number() -> str:
    """A random 6-digit shop number (店铺号) from a CSPRNG: not sequential, not guessable."""
    return f"{secrets.randbelow(1_000_000):06d}"


SHOP_NUMBER_RE = re.compile(r"^\d{6}$")


def is_shop_number(value: str) -> bool:
    return bool(SHOP_NUMBER_RE.match(str(value or "")))


# --- who may touch a shop -----------------------------------------------------------------------
def is_keeper_of(actor: Mapping[str, Any] | None, shop_member_id: int, allow_admin: bool) -> bool:
    """A keeper touches only their own shop; an admin may too where ``allow_admin``."""
    actor = actor or {}
    role = actor.get("role")
    if role == "admin" and allow_admin:
        return True
    return role == "member" and str(actor.get("sub")) == str(shop_member_id)


def ensure_keeper(
    actor: Mapping[str, Any] | None,
    shop_member_id: int,
    allow_admin: bool = False,
    *,
    shop_id: int,
) -> None:
    """Another keeper's shop answers the very 404 of a missing shop (``shop_not_found``),
    never a 403: "not yours" and "does not exist" must not differ, or shop ids could be probed."""
    if not is_keeper_of(actor, shop_member_id, allow_admin):
        raise not_found("shop", shop_id)


# --- shop life cycle ----------------------------------------------------------------------------
PENDING, ACTIVE, SUSPENDED = "pending_verification", "active", "suspended"


def ensure_can_verify(status: str) -> bool:
    """True when verification has work to do; False when the shop is already active."""
    if status == ACTIVE:
        return False
    if status != PENDING:
        raise RuleViolation(
            f"a {status} shop cannot be verified",
            details=[rule("shop_not_pending", f"the shop is {status}")],
        )
    return True


# --- suspension (issue 13) ----------------------------------------------------------------------
SUSPENDED_MESSAGE = "这家小铺已暂停营业，暂时无法浏览和购买。"
KEEPER_SUSPENDED_REASON = "the keeper is suspended"


def is_suspended(shop_suspended: bool, keeper_suspended: bool) -> bool:
    """A shop stops selling and earning while it, or its keeper, is suspended."""
    return shop_suspended or keeper_suspended


def shown_status(status: str, suspended: bool) -> str:
    """The status others see: ``suspended`` overrides the life-cycle status (so orders does not
    attribute to it and share shows its shares unavailable) until the admin reinstates it."""
    return SUSPENDED if suspended else status


def suspension_refusal(member_suspended: bool) -> list[dict]:
    """A suspended keeper may not open a(nother) shop."""
    if not member_suspended:
        return []
    return [rule("member_suspended", "the platform has suspended this member")]


# --- selections ---------------------------------------------------------------------------------
def clean_reason(reason: str | None, rules: ShopRules) -> str | None:
    """The recommendation reason: plain text (pages escape it), newlines allowed, no other
    control characters, at most ``reason_max_chars`` characters."""
    return clean_field(reason, "reason", rules.reason_max_chars, multiline=True)


def pick_limit(rules: ShopRules) -> int:
    """How many products one shop may pick (1,000)."""
    return rules.max_products_per_shop


def can_pick(selection_count: int, rules: ShopRules) -> bool:
    """The 1,000-pick rule: a shop holding ``selection_count`` picks may add one more. The SQL
    that takes the slot atomically (``selection_count < pick_limit(rules)``) is this test."""
    return selection_count < pick_limit(rules)


def selection_limit_reached(max_products: int) -> RuleViolation:
    return RuleViolation(
        f"a shop may pick at most {max_products} products; remove one before adding another",
        details=[
            rule("selection_limit", f"at most {max_products} products per shop", limit=max_products)
        ],
    )


# --- levels -------------------------------------------------------------------------------------
def level_for_sales(sales_fen: int, rules: ShopRules) -> str:
    for level, minimum in rules.level_thresholds():
        if sales_fen >= minimum:
            return level
    return "newcomer"


def level_badge(level: str, rules: ShopRules) -> dict:
    return {
        "code": level,
        "label": LEVEL_LABELS.get(level, level),
        "bonus_bps": rules.bonus_bps(level),
    }


LEVEL_ORDER = ("newcomer", "senior", "elite", "super")


def level_progress(level: str, month_sales_fen: int, rules: ShopRules) -> dict:
    """What the keeper sees of their level: its bonus, every threshold (lowest first), this
    month's settled sales and what is left to reach the next level above the current one
    (``next`` None at the top). Levels change on the 1st from the finished month's sales
    (``level_changes``); this is the progress toward that recalculation."""
    minimum = dict(rules.level_thresholds())
    thresholds = [
        {"level": lv, "min_sales_fen": minimum.get(lv, 0), "bonus_bps": rules.bonus_bps(lv)}
        for lv in LEVEL_ORDER
    ]
    rank = LEVEL_ORDER.index(level) if level in LEVEL_ORDER else 0
    above = LEVEL_ORDER[rank + 1] if rank + 1 < len(LEVEL_ORDER) else None
    above_min = minimum.get(above, 0) if above else 0
    return {
        "level": level,
        "level_label": LEVEL_LABELS.get(level, level),
        "bonus_bps": rules.bonus_bps(level),
        "month_sales_fen": month_sales_fen,
        "thresholds": thresholds,
        "next": None
        if above is None
        else {
            "level": above,
            "min_sales_fen": above_min,
            "remaining_fen": max(0, above_min - month_sales_fen),
        },
    }


def current_month(now: datetime) -> str:
    return f"{now.year:04d}-{now.month:02d}"


MONTH_RE = re.compile(r"^(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])$")  # 1970–2999


def parse_month(month: str) -> tuple[int, int]:
    m = MONTH_RE.match(str(month or ""))
    if not m:
        raise ValidationFailed(
            "month must be YYYY-MM", details=[{"field": "month", "message": "expected YYYY-MM"}]
        )
    return int(m.group(1)), int(m.group(2))


def previous_month(now: datetime) -> str:
    year, month = now.year, now.month - 1
    if month == 0:
        year, month = year - 1, 12
    return f"{year:04d}-{month:02d}"


def ensure_month_closed(month: str, now: datetime) -> None:
    """Levels come from a whole month of settled sales: the month must have ended."""
    year, mon = parse_month(month)
    if (year, mon) >= (now.year, now.month):
        raise RuleViolation(
            f"{month} has not ended yet; levels are computed from a finished month",
            details=[
                rule("month_not_closed", "pick a month before the current one", field="month")
            ],
        )


@dataclass
class LevelChange:
    shop_id: int
    old_level: str
    new_level: str
    bonus_bps: int

    def as_dict(self) -> dict:
        return {
            "shop_id": self.shop_id,
            "old_level": self.old_level,
            "new_level": self.new_level,
            "bonus_bps": self.bonus_bps,
        }


@dataclass
class ShopLevelState:
    shop_id: int
    level: str
    level_month: str | None = None


def level_changes(
    shops: Iterable[ShopLevelState], sales: Mapping[str, int], month: str, rules: ShopRules
) -> list[LevelChange]:
    """The level each shop earns from ``month``'s settled sales (a shop without sales falls to
    newcomer). A shop whose level already comes from a later month is left alone, so running
    an old month late never overrides a newer level."""
    changes = []
    for shop in shops:
        if shop.level_month is not None and shop.level_month > month:
            continue
        new = level_for_sales(int(sales.get(str(shop.shop_id), 0) or 0), rules)
        if new != shop.level:
            changes.append(LevelChange(shop.shop_id, shop.level, new, rules.bonus_bps(new)))
    return changes


def normalize_sales(raw: Mapping[Any, Any] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in (raw or {}).items():
        try:
            out[str(int(key))] = int(value)
        except (TypeError, ValueError):
            continue
    return out


# --- paging the public view ---------------------------------------------------------------------
class PageCursor:
    """Opaque page cursors for the public shop view (a base-36 offset)."""

    @staticmethod
    def decode(cursor: str | None) -> int:
        if not cursor:
            return 0
        try:
            value = int(str(cursor), 36)
        except ValueError as exc:
            raise ValidationFailed(
                "the cursor is invalid", details=[{"field": "cursor", "message": "invalid cursor"}]
            ) from exc
        if value < 0:
            raise ValidationFailed(
                "the cursor is invalid", details=[{"field": "cursor", "message": "invalid cursor"}]
            )
        return value

    @staticmethod
    def encode(offset: int) -> str:
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"
        if offset == 0:
            return "0"
        out = ""
        while offset:
            offset, r = divmod(offset, 36)
            out = digits[r] + out
        return out
