"""Shop entrypoints with their dependencies replaced (nameko's worker_factory)."""

from datetime import UTC, datetime

from nameko.testing.services import worker_factory

from shared import clock
from shop import handlers
from shop.service import ShopService


def test_monthly_timer_recalculates_the_previous_month_once(monkeypatch):
    runs, done = [], set()
    monkeypatch.setattr(
        handlers, "level_record", lambda db, month: {"month": month} if month in done else None
    )

    def recalc(db, rules, month, settled_sales):
        runs.append(month)
        done.add(month)
        return {"month": month, "changes": []}

    monkeypatch.setattr(handlers, "recalculate_levels", recalc)
    service = worker_factory(ShopService, config={"RULES": {}})
    clock.set_now(datetime(2026, 12, 1, 0, 5, tzinfo=UTC))
    service.monthly_levels()
    service.monthly_levels()
    clock.set_now(datetime(2027, 1, 1, 0, 1, tzinfo=UTC))
    service.monthly_levels()
    assert runs == ["2026-11", "2026-12"]


def test_monthly_timer_survives_payouts_being_down(monkeypatch):
    from shared.errors import ServiceUnavailable

    monkeypatch.setattr(handlers, "level_record", lambda db, month: None)

    def recalc(db, rules, month, settled_sales):
        raise ServiceUnavailable("the payouts service is not running")

    monkeypatch.setattr(handlers, "recalculate_levels", recalc)
    service = worker_factory(ShopService, config={"RULES": {}})
    service.monthly_levels()  # logs and tries again at the next tick


def test_rules_come_from_the_service_config():
    service = worker_factory(ShopService, config={"RULES": {"max_products_per_shop": 5}})
    assert service.rules.max_products_per_shop == 5
    assert service.rules.min_credit_score == 700
