"""The catalog rules of PRODUCT.md, alone (no broker, no database)."""

from datetime import UTC

import pytest

from catalog import domain
from catalog.domain import CatalogRules

R = CatalogRules()


def qualified(**over):
    app = {
        "registered_capital_fen": 100_000_000,
        "general_taxpayer": True,
        "brand_authorization_levels": 2,
        "purchase_records": False,
        "categories": [],
    }
    app.update(over)
    return app


def listing(**over):
    p = {
        "title": "Tea",
        "category": "food_health",
        "price_fen": 9900,
        "stock": 10,
        "commission_bps": 1500,
        "market_commission_bps": 1200,
        "reference_price_fen": 12900,
    }
    p.update(over)
    return p


def names(problems):
    return sorted(p["rule"] for p in problems)


def test_defaults_are_the_documented_ones():
    assert R.min_registered_capital_fen == 100_000_000
    assert R.deposit_fen == 1_000_000
    assert R.max_brand_authorization_levels == 3
    assert R.categories == (
        "food_health",
        "beauty_care",
        "baby_toys",
        "home_appliances",
        "apparel_sports",
    )


def test_rules_come_from_config_strings_and_mappings():
    r = CatalogRules.from_config(
        {
            "deposit_fen": "2000000",
            "require_general_taxpayer": "false",
            "category_deposit_fen": "baby_toys=3000000,food_health=1500000",
            "categories": "food_health,pets",
            "min_registered_capital_fen": None,
        }
    )
    assert r.deposit_fen == 2_000_000
    assert r.require_general_taxpayer is False
    assert r.category_deposit_fen == {"baby_toys": 3_000_000, "food_health": 1_500_000}
    assert r.categories == ("food_health", "pets")
    assert r.min_registered_capital_fen == 100_000_000


def test_a_qualified_supplier_breaks_no_rule():
    assert domain.qualification_problems(qualified(), R) == []
    assert (
        domain.qualification_problems(
            qualified(brand_authorization_levels=None, purchase_records=True), R
        )
        == []
    )


def test_an_underqualified_supplier_is_told_every_rule_it_breaks():
    problems = domain.qualification_problems(
        qualified(
            registered_capital_fen=99_999_999, general_taxpayer=False, brand_authorization_levels=4
        ),
        R,
    )
    assert names(problems) == [
        "brand_authorization_chain",
        "general_taxpayer",
        "registered_capital",
    ]


def test_goods_need_an_authorisation_chain_or_purchase_records():
    problems = domain.qualification_problems(qualified(brand_authorization_levels=None), R)
    assert names(problems) == ["goods_provenance"]


def test_a_chain_of_exactly_three_levels_is_allowed():
    assert domain.qualification_problems(qualified(brand_authorization_levels=3), R) == []


def test_some_categories_require_a_bigger_deposit():
    r = CatalogRules(category_deposit_fen={"baby_toys": 3_000_000})
    assert domain.required_deposit_fen([], r) == 1_000_000
    assert domain.required_deposit_fen(["food_health"], r) == 1_000_000
    assert domain.required_deposit_fen(["food_health", "baby_toys"], r) == 3_000_000


def test_partial_deposits_accumulate_until_the_supplier_is_active():
    status, paid = domain.after_deposit("pending_deposit", 0, 400_000, 1_000_000)
    assert (status, paid) == ("pending_deposit", 400_000)
    status, paid = domain.after_deposit(status, paid, 600_000, 1_000_000)
    assert (status, paid) == ("active", 1_000_000)


def test_a_valid_listing_breaks_no_rule():
    assert domain.listing_problems(listing(), R) == []
    assert domain.listing_problems(listing(stock=0, commission_bps=1200, price_fen=12900), R) == []


@pytest.mark.parametrize(
    "over, rule",
    [
        ({"commission_bps": 1199}, "commission_not_below_market"),
        ({"price_fen": 12901}, "price_not_above_reference"),
        ({"category": "weapons"}, "category_known"),
        ({"price_fen": 0}, "price_positive"),
        ({"price_fen": 1.5}, "price_positive"),
        ({"stock": -1}, "stock_non_negative"),
        ({"reference_price_fen": 0}, "reference_price_positive"),
    ],
)
def test_a_listing_breaking_a_rule_is_rejected_naming_it(over, rule):
    assert rule in names(domain.listing_problems(listing(**over), R))


def test_a_category_needing_a_bigger_deposit_refuses_a_supplier_that_paid_less():
    r = CatalogRules(category_deposit_fen={"baby_toys": 3_000_000})
    problems = domain.listing_problems(listing(category="baby_toys"), r, 1_000_000)
    assert names(problems) == ["category_deposit"]
    assert domain.listing_problems(listing(category="baby_toys"), r, 3_000_000) == []


def test_available_means_listed_in_stock_and_supplier_active():
    assert domain.is_available("listed", 1, True)
    assert not domain.is_available("listed", 0, True)
    assert not domain.is_available("delisted", 5, True)
    assert not domain.is_available("listed", 5, False)


def test_commission_is_exact_fen_half_up():
    assert domain.commission_fen(9999, 1500) == 1500  # 1499.85 → 1500
    assert domain.commission_fen(10000, 1234) == 1234


def test_reservation_lines_are_summed_and_ordered_by_product():
    assert domain.merge_lines(
        [
            {"product_id": 5, "quantity": 1},
            {"product_id": 2, "quantity": 2},
            {"product_id": 5, "quantity": 3},
        ]
    ) == [(2, 2), (5, 4)]


def test_cursor_round_trips_and_rejects_garbage():
    assert domain.decode_cursor(domain.encode_cursor(1234)) == 1234
    assert domain.decode_cursor(None) is None
    for bad in ("!!!", "eDox", domain.encode_cursor(1)[:-1] + "@"):
        with pytest.raises(ValueError):
            domain.decode_cursor(bad)


def test_a_hold_expires_after_the_callers_deadline_plus_the_grace():
    from datetime import datetime, timedelta

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    expires = domain.hold_expires_at(t0, 600, R)  # the buyer has 10 minutes to pay
    assert expires == t0 + timedelta(minutes=15)  # + 5 minutes of grace
    assert not domain.reservation_expired(expires, t0 + timedelta(minutes=14, seconds=59))
    assert domain.reservation_expired(expires, t0 + timedelta(minutes=15))


def test_a_hold_without_a_deadline_uses_the_default_hold():
    from datetime import datetime, timedelta

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    expires = domain.hold_expires_at(t0, None, R)  # 30 minutes + 5 of grace
    assert not domain.reservation_expired(expires, t0 + timedelta(minutes=34))
    assert domain.reservation_expired(expires, t0 + timedelta(minutes=35))
    r = CatalogRules.from_config({"RULES": {"reservation_grace_seconds": "60"}})
    assert domain.hold_expires_at(t0, 600, r) == t0 + timedelta(minutes=11)
