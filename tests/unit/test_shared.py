"""Unit tests of the shared building blocks (no broker, no database server)."""

from __future__ import annotations

import os
import time

import jwt
import pytest
from nameko.exceptions import deserialize, serialize

from shared import clock
from shared.config import load_config
from shared.errors import Conflict, NotFound, RuleViolation, rule
from shared.money import apply_bps, prorate, yuan


def test_commission_rounds_half_up_to_whole_fen():
    assert apply_bps(10_000, 500) == 500
    assert apply_bps(199, 250) == 5  # 4.975 → 5
    assert apply_bps(1, 4_999) == 0  # 0.4999 → 0
    assert apply_bps(1, 5_000) == 1  # 0.5 → 1
    with pytest.raises(TypeError):
        apply_bps(10.0, 100)


def test_prorated_reversal_of_a_full_refund_is_exact():
    assert prorate(3_000, 3_000, 777) == 777
    assert prorate(1_000, 3_000, 777) == 259
    assert prorate(1, 0, 5) == 0
    assert yuan(1999) == "19.99" and yuan(-5) == "-0.05"


def test_domain_errors_cross_rpc_as_themselves():
    err = RuleViolation("listing breaks rules", details=[rule("min_commission", "too low")])
    back = deserialize(serialize(err))
    assert isinstance(back, RuleViolation) and back.status == 422
    assert back.details == [{"rule": "min_commission", "message": "too low"}]
    assert back.code == "rule_violation"
    assert isinstance(deserialize(serialize(NotFound("no shop 3"))), NotFound)
    conflict = deserialize(
        serialize(
            Conflict(
                "order is created",
                details={"status": "created", "short": [3, None]},
                code="illegal_transition",
            )
        )
    )
    assert conflict.code == "illegal_transition" and conflict.status == 409
    assert conflict.details == {"status": "created", "short": [3, None]}  # types survive


def test_config_reads_environment_overrides(monkeypatch):
    monkeypatch.setenv("SHOP_DATABASE_URL", "postgresql://x@y/z")
    monkeypatch.setenv("AMQP_URI", "amqp://u:p@h:1/v")
    cfg = load_config("shop")
    assert cfg["DATABASE_URL"] == "postgresql://x@y/z"
    assert cfg["AMQP_URI"] == "amqp://u:p@h:1/v"


def test_config_defaults_without_environment(monkeypatch):
    for var in ("SHOP_DATABASE_URL", "AMQP_URI", "XIAOPU_TEST_MODE"):
        monkeypatch.delenv(var, raising=False)
    cfg = load_config("shop")
    assert cfg["DATABASE_URL"] == "sqlite:///var/data/shop.db"
    assert cfg["AMQP_URI"] == "amqp://guest:guest@127.0.0.1:5672/"
    assert cfg["XIAOPU_TEST_MODE"] == 0


def test_test_mode_is_refused_in_production(monkeypatch):
    monkeypatch.setenv("XIAOPU_TEST_MODE", "1")
    monkeypatch.setenv("XIAOPU_ENV", "production")
    with pytest.raises(SystemExit):
        load_config("orders")


def test_gateway_address_comes_from_host_and_port(monkeypatch):
    monkeypatch.setenv("GATEWAY_HOST", "0.0.0.0")
    monkeypatch.setenv("GATEWAY_PORT", "9100")
    assert load_config("gateway")["WEB_SERVER_ADDRESS"] == "0.0.0.0:9100"


def test_moving_the_clock_keeps_time_flowing():
    moved = clock.set_now(clock.parse("2030-01-01T00:00:00Z"))
    assert moved.year == 2030
    time.sleep(0.01)
    assert clock.now() > moved
    clock.reset()
    assert clock.now().year < 2030 or os.environ.get("FAKE_YEAR")


def test_tokens_carry_role_and_subject_and_expire():
    from gateway.auth import TokenService
    from shared.errors import Unauthorized

    tokens = TokenService("s" * 32, "admin-secret", ttl=60)
    principal = tokens.verify(f"Bearer {tokens.issue('member', 42)}")
    assert (principal.role, principal.sub) == ("member", "42")
    assert tokens.verify("Bearer admin-secret").is_admin
    assert tokens.verify(None) is None
    expired = jwt.encode(
        {"role": "member", "sub": "1", "exp": int(time.time()) - 1}, "s" * 32, algorithm="HS256"
    )
    with pytest.raises(Unauthorized):
        tokens.verify(f"Bearer {expired}")
    with pytest.raises(Unauthorized):
        tokens.verify("Basic abc")


def test_expected_domain_errors_are_logged_as_one_info_line():
    import logging
    import sys

    from shared.logs import ExpectedErrorFilter

    try:
        raise NotFound("product 1 not found", code="product_not_found")
    except NotFound:
        record = logging.LogRecord(
            "nameko.containers",
            logging.ERROR,
            __file__,
            1,
            "error handling worker %s: %s",
            ("ctx", "boom"),
            sys.exc_info(),
        )
    assert ExpectedErrorFilter().filter(record)
    assert record.levelno == logging.INFO and record.exc_info is None
    assert "404 product_not_found" in record.getMessage()
    try:
        raise RuntimeError("a real bug")
    except RuntimeError:
        bug = logging.LogRecord(
            "nameko.containers",
            logging.ERROR,
            __file__,
            1,
            "error handling worker %s: %s",
            ("ctx", "x"),
            sys.exc_info(),
        )
    ExpectedErrorFilter().filter(bug)
    assert bug.levelno == logging.ERROR and bug.exc_info is not None


def test_a_configured_timer_reads_its_interval_from_config_then_rules():
    from types import SimpleNamespace

    from shared.timers import ConfiguredTimer

    def interval(config):
        timer = ConfiguredTimer("sweep_seconds", 30.0)
        timer.container = SimpleNamespace(config=config)
        timer.setup()
        return timer.interval

    assert interval({}) == 30.0
    assert interval({"RULES": {"sweep_seconds": "2.5"}}) == 2.5
    assert interval({"sweep_seconds": 0.3, "RULES": {"sweep_seconds": 9}}) == 0.3


def test_allocate_splits_to_the_fen_by_largest_remainder():
    from shared.money import allocate

    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(5000, [2000, 5000]) == [1429, 3571]
    assert allocate(0, [3, 4]) == [0, 0] and allocate(5, [0, 0]) == [0, 0]
    for amount in range(0, 12):
        shares = allocate(amount, [3, 7, 1])
        assert sum(shares) == amount and all(s <= w for s, w in zip(shares, [3, 7, 1], strict=True))
