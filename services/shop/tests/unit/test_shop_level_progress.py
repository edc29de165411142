"""The keeper's level progress (issue 17): thresholds, bonus and what is left to the next level."""

from datetime import UTC, datetime

import pytest

from shop import domain
from shop.domain import ShopRules

pytestmark = pytest.mark.unit
R = ShopRules()


def test_a_newcomer_sees_every_threshold_and_the_way_to_senior():
    got = domain.level_progress("newcomer", 30_000, R)
    assert [t["level"] for t in got["thresholds"]] == ["newcomer", "senior", "elite", "super"]
    assert got["bonus_bps"] == 0 and got["month_sales_fen"] == 30_000
    assert got["next"] == {"level": "senior", "min_sales_fen": 100_000, "remaining_fen": 70_000}


def test_sales_past_the_next_threshold_leave_nothing_to_go():
    got = domain.level_progress("elite", 6_000_000, R)
    assert got["bonus_bps"] == 100
    assert got["next"] == {"level": "super", "min_sales_fen": 5_000_000, "remaining_fen": 0}


def test_the_top_level_has_no_next():
    assert domain.level_progress("super", 0, R)["next"] is None


def test_configured_thresholds_and_bonuses_show():
    rules = ShopRules(level_senior_min_sales_fen=500, level_bonus_bps_senior=75)
    got = domain.level_progress("newcomer", 100, rules)
    assert got["thresholds"][1] == {"level": "senior", "min_sales_fen": 500, "bonus_bps": 75}
    assert got["next"]["remaining_fen"] == 400


def test_the_current_month():
    assert domain.current_month(datetime(2026, 1, 31, 23, tzinfo=UTC)) == "2026-01"
