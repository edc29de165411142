"""Shop entrypoints with their dependencies replaced (nameko's worker_factory)."""

from datetime import UTC, datetime

import pytest
from nameko.testing.services import worker_factory

from shared import clock
from shared.errors import Conflict, ServiceUnavailable
from shop import queries
from shop.handlers import LostRace, levels
from shop.service import ShopService


def test_monthly_timer_recalculates_the_previous_month_once(monkeypatch):
    runs, done = [], set()
    monkeypatch.setattr(
        queries,
        "level_record",
        lambda session, month: {"month": month, "changes": []} if month in done else None,
    )

    def recalc(uow, rules, month, settled_sales):
        runs.append(month)
        done.add(month)
        return {"month": month, "changes": [], "replayed": False}

    monkeypatch.setattr(levels, "recalculate", recalc)
    service = worker_factory(ShopService, config={"RULES": {}})
    clock.set_now(datetime(2026, 12, 1, 0, 5, tzinfo=UTC))
    service.monthly_levels()
    service.monthly_levels()
    clock.set_now(datetime(2027, 1, 1, 0, 1, tzinfo=UTC))
    service.monthly_levels()
    assert runs == ["2026-11", "2026-12"]
    # payouts is asked for the settled sales within the deadline, once per month
    service.deadline.call.assert_called_with(service.payouts, "payouts")
    asked = service.deadline.call.return_value.settled_sales.call_args_list
    assert [c.args for c in asked] == [("2026-11",), ("2026-12",)]


def test_monthly_timer_survives_payouts_being_down(monkeypatch):
    runs = []
    monkeypatch.setattr(queries, "level_record", lambda session, month: None)
    monkeypatch.setattr(levels, "recalculate", lambda *args: runs.append(args))
    service = worker_factory(ShopService, config={"RULES": {}})
    service.deadline.call.return_value.settled_sales.side_effect = ServiceUnavailable(
        "the payouts service is not running"
    )
    service.monthly_levels()  # logs and tries again at the next tick
    assert runs == []


def test_rules_come_from_the_service_config():
    service = worker_factory(ShopService, config={"RULES": {"max_products_per_shop": 5}})
    assert service.rules.max_products_per_shop == 5
    assert service.rules.min_credit_score == 700


def test_a_handler_that_lost_a_race_runs_in_a_fresh_unit_of_work():
    service = worker_factory(ShopService, config={"RULES": {}})
    uow = service.db.unit_of_work.return_value.__enter__.return_value
    uow.once.side_effect = lambda fn, step=None: fn()  # no idempotency key: just runs
    calls = []

    def loses_twice(uow, value):
        calls.append(value)
        if len(calls) < 3:
            raise LostRace(Conflict("taken"))
        return value

    assert service._write(loses_twice, "ok") == "ok"
    assert calls == ["ok"] * 3 and service.db.unit_of_work.call_count == 3

    def always_loses(uow):
        raise LostRace(Conflict("the selection changed concurrently; try again"))

    with pytest.raises(Conflict, match="concurrently"):
        service._write(always_loses)
