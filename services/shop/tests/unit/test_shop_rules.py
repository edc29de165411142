"""The shop rules of PRODUCT.md, tested on the pure domain module."""

from datetime import UTC, datetime

import pytest

from shared.errors import NotFound, RuleViolation, ValidationFailed
from shared.validation import not_found
from shop import domain
from shop.domain import ShopRules

RULES = ShopRules()


def test_rules_come_from_config_with_defaults():
    rules = ShopRules.from_config(
        {
            "min_credit_score": "650",
            "require_real_name": "false",
            "forbidden_name_words": "旗舰, 官方",
            "name_suffix": "铺",
        }
    )
    assert rules.min_credit_score == 650
    assert rules.require_real_name is False
    assert rules.forbidden_name_words == ("旗舰", "官方")
    assert rules.name_suffix == "铺"
    assert rules.max_products_per_shop == 1000
    assert ShopRules.from_config({}) == ShopRules()


def test_member_under_700_is_refused_with_the_reason():
    with pytest.raises(RuleViolation) as exc:
        domain.ensure_may_open(699, True, 0, 1, RULES)
    assert [d["rule"] for d in exc.value.details] == ["credit_score_too_low"]
    assert "700" in exc.value.message


def test_every_refusal_reason_is_listed():
    reasons = domain.opening_refusals(500, False, 1, 1, RULES)
    assert [r["rule"] for r in reasons] == [
        "credit_score_too_low",
        "real_name_not_verified",
        "shop_quota_reached",
    ]


def test_member_at_700_and_verified_may_open():
    domain.ensure_may_open(700, True, 0, 1, RULES)
    domain.ensure_may_open(700, True, 1, 2, RULES)  # an admin granted a second shop


@pytest.mark.parametrize("name", ["阿花旗舰店", "官方好物", "Official Goods", "正品专卖"])
def test_shop_name_with_a_forbidden_word_is_refused(name):
    with pytest.raises(RuleViolation) as exc:
        domain.clean_shop_name(name, RULES)
    assert exc.value.details[0]["rule"] == "forbidden_name_word"


def test_shop_name_length_counts_characters_not_bytes():
    twenty = "好" * 20  # 60 bytes in UTF-8, 20 characters
    assert domain.clean_shop_name(twenty, RULES) == twenty
    with pytest.raises(ValidationFailed):
        domain.clean_shop_name("好" * 21, RULES)
    with pytest.raises(ValidationFailed):
        domain.clean_shop_name("好", RULES)


def test_platform_suffix_is_appended_once():
    assert domain.display_name("阿花的", RULES) == "阿花的小铺"
    name = domain.clean_shop_name("阿花的小铺", RULES)
    assert name == "阿花的"
    assert domain.display_name(name, RULES) == "阿花的小铺"


def test_shop_name_with_control_characters_is_refused():
    with pytest.raises(ValidationFailed):
        domain.clean_shop_name("阿花\x00的", RULES)
    with pytest.raises(ValidationFailed):
        domain.clean_shop_name("阿花\u202e的", RULES)


@pytest.mark.parametrize(
    "phone,expected",
    [
        ("13800138000", "13800138000"),
        ("+86 139-0013-8000", "13900138000"),
        ("19912345678", "19912345678"),
    ],
)
def test_mainland_mobile_numbers_are_accepted(phone, expected):
    assert domain.normalize_phone(phone) == expected


@pytest.mark.parametrize(
    "phone", ["12800138000", "1380013800", "138001380000", "abc", "010-12345678", ""]
)
def test_other_phone_numbers_are_refused(phone):
    with pytest.raises(ValidationFailed) as exc:
        domain.normalize_phone(phone)
    assert exc.value.details[0]["field"] == "phone"


def test_shop_numbers_are_six_random_digits_keeping_leading_zeros(monkeypatch):
    monkeypatch.setattr(domain.secrets, "randbelow", lambda n: 123)
    assert domain.new_shop_number() == "000123"
    monkeypatch.undo()
    numbers = {domain.new_shop_number() for _ in range(200)}
    assert all(len(n) == 6 and n.isdigit() for n in numbers)
    assert len(numbers) > 190  # random, not sequential
    assert domain.is_shop_number("000123") and not domain.is_shop_number("12345")


def test_reason_is_plain_text_limited_in_characters():
    assert domain.clean_reason("  好用<b>不贵</b>\n回购三次 ", RULES) == "好用<b>不贵</b>\n回购三次"
    assert domain.clean_reason("   ", RULES) is None
    assert domain.clean_reason(None, RULES) is None
    assert domain.clean_reason("好" * 200, RULES) == "好" * 200
    with pytest.raises(ValidationFailed):
        domain.clean_reason("好" * 201, RULES)
    with pytest.raises(ValidationFailed):
        domain.clean_reason("bell\x07", RULES)


def test_a_shop_may_pick_up_to_the_configured_limit():
    assert domain.pick_limit(RULES) == 1000
    assert domain.can_pick(999, RULES) and not domain.can_pick(1000, RULES)
    small = ShopRules(max_products_per_shop=3)
    assert domain.pick_limit(small) == 3
    assert domain.can_pick(2, small) and not domain.can_pick(3, small)


def test_a_member_owns_one_shop_unless_an_admin_granted_more():
    assert domain.shop_quota(None, RULES) == 1
    assert domain.shop_quota(3, RULES) == 3
    assert domain.shop_quota(None, ShopRules(shops_per_member=2)) == 2
    assert domain.may_own_another_shop(0, 1) and not domain.may_own_another_shop(1, 1)


def test_only_the_keeper_touches_a_shop_and_an_admin_where_allowed():
    domain.ensure_keeper({"role": "member", "sub": "7"}, 7, shop_id=3)
    domain.ensure_keeper({"role": "member", "sub": 7}, 7, shop_id=3)
    for actor, allow_admin in (
        ({"role": "member", "sub": "8"}, True),
        ({"role": "admin", "sub": "admin"}, False),
        (None, True),
    ):
        with pytest.raises(NotFound) as refused:  # the very 404 of a missing shop
            domain.ensure_keeper(actor, 7, allow_admin=allow_admin, shop_id=3)
        assert refused.value.envelope() == not_found("shop", 3).envelope()
    domain.ensure_keeper({"role": "admin", "sub": "admin"}, 7, allow_admin=True, shop_id=3)


def test_forbidden_words_match_whatever_their_configured_case():
    rules = ShopRules.from_config({"forbidden_name_words": "Flagship,官方"})
    with pytest.raises(RuleViolation) as refused:
        domain.clean_shop_name("阿花 FLAGSHIP", rules)
    assert [d["word"] for d in refused.value.details] == ["flagship"]


def test_selection_limit_is_a_rule_violation():
    err = domain.selection_limit_reached(1000)
    assert err.status == 422 and err.details[0]["rule"] == "selection_limit"


@pytest.mark.parametrize(
    "sales,level",
    [
        (0, "newcomer"),
        (99_999, "newcomer"),
        (100_000, "senior"),
        (999_999, "senior"),
        (1_000_000, "elite"),
        (5_000_000, "super"),
    ],
)
def test_level_follows_monthly_settled_sales(sales, level):
    assert domain.level_for_sales(sales, RULES) == level


def test_level_bonus_defaults():
    assert [RULES.bonus_bps(x) for x in domain.LEVELS] == [0, 50, 100, 200]


def test_level_changes_only_for_shops_whose_level_moves():
    shops = [
        domain.ShopLevelState(1, "newcomer"),
        domain.ShopLevelState(2, "senior"),
        domain.ShopLevelState(3, "elite"),
        domain.ShopLevelState(4, "newcomer", "2026-11"),
    ]
    changes = domain.level_changes(
        shops, {"1": 150_000, "2": 120_000, "4": 9_000_000}, "2026-10", RULES
    )
    assert [c.as_dict() for c in changes] == [
        {"shop_id": 1, "old_level": "newcomer", "new_level": "senior", "bonus_bps": 50},
        {"shop_id": 3, "old_level": "elite", "new_level": "newcomer", "bonus_bps": 0},
    ]


def test_levels_use_finished_months_only():
    now = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)
    assert domain.previous_month(now) == "2026-10"
    assert domain.previous_month(datetime(2027, 1, 1, tzinfo=UTC)) == "2026-12"
    domain.ensure_month_closed("2026-10", now)
    with pytest.raises(RuleViolation):
        domain.ensure_month_closed("2026-11", now)
    with pytest.raises(ValidationFailed):
        domain.parse_month("2026-13")


def test_page_cursor_round_trips():
    assert domain.PageCursor.decode(domain.PageCursor.encode(250)) == 250
    assert domain.PageCursor.decode(None) == 0
    with pytest.raises(ValidationFailed):
        domain.PageCursor.decode("!!")
