"""Issue 12: no built-in payment secret, production refuses the sandbox provider, event
retries span a configurable horizon."""

from __future__ import annotations

import pytest

from shared.config import SERVICES, check_config, load_config, sandbox_pay_enabled
from shared.events import retry_delay_seconds, retry_plan


def test_no_payment_secret_is_built_in(monkeypatch):
    monkeypatch.delenv("PAYMENT_SANDBOX_SECRET", raising=False)
    assert not load_config("orders")["PAYMENT_SANDBOX_SECRET"]


def test_an_empty_secret_refuses_every_callback():
    from orders.payments import SandboxProvider, sign
    from shared.errors import Unauthorized

    provider = SandboxProvider("")
    raw = b'{"payment_id":"p","order_id":1,"amount_fen":1,"status":"succeeded"}'
    for signature in (sign("", raw), None, "00" * 32):
        with pytest.raises(Unauthorized) as refused:
            provider.verify(raw, signature)
        assert refused.value.code == "payment_provider_not_configured"


@pytest.mark.parametrize(
    "env, message",
    [
        ({}, "needs a real payment provider"),
        ({"PAYMENT_PROVIDER": "sandbox", "PAYMENT_SANDBOX_SECRET": "x" * 32}, "real payment"),
        ({"PAYMENT_PROVIDER": "acme"}, "PAYMENT_PROVIDER_SECRET"),
        (
            {
                "PAYMENT_PROVIDER": "acme",
                "PAYMENT_PROVIDER_SECRET": "s",
                "PAYMENT_SANDBOX_ENABLED": "1",
            },
            "PAYMENT_SANDBOX_ENABLED=1 is refused",
        ),
    ],
)
@pytest.mark.parametrize("service", ["orders", "gateway"])
def test_production_refuses_to_start_without_a_real_payment_provider(
    monkeypatch, env, message, service
):
    for var in ("PAYMENT_PROVIDER", "PAYMENT_PROVIDER_SECRET", "PAYMENT_SANDBOX_ENABLED"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XIAOPU_ENV", "production")
    monkeypatch.setenv("XIAOPU_TEST_MODE", "0")
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(SystemExit) as refused:
        load_config(service)
    assert message in str(refused.value)


def test_production_with_a_real_provider_and_its_secret_starts(monkeypatch):
    monkeypatch.setenv("XIAOPU_ENV", "production")
    monkeypatch.setenv("XIAOPU_TEST_MODE", "0")
    monkeypatch.setenv("PAYMENT_PROVIDER", "acme")
    monkeypatch.setenv("PAYMENT_PROVIDER_SECRET", "from-the-vault")
    monkeypatch.delenv("PAYMENT_SANDBOX_ENABLED", raising=False)
    monkeypatch.setenv("XIAOPU_SECRET_KEY", "shared-by-every-gateway")
    monkeypatch.setenv("XIAOPU_FINGERPRINT_SALT", "shared-by-every-service")
    config = load_config("gateway")
    assert not sandbox_pay_enabled(config)
    check_config({"XIAOPU_ENV": "production"})  # services without payments are not concerned


@pytest.mark.parametrize("service", ["gateway", "orders", "payouts", "shop"])
def test_production_refuses_to_start_without_the_shared_secrets(monkeypatch, service):
    """Issue 18: every instance must share them; none may invent its own in production."""
    monkeypatch.setenv("XIAOPU_ENV", "production")
    monkeypatch.setenv("XIAOPU_TEST_MODE", "0")
    monkeypatch.setenv("PAYMENT_PROVIDER", "acme")
    monkeypatch.setenv("PAYMENT_PROVIDER_SECRET", "from-the-vault")
    monkeypatch.delenv("PAYMENT_SANDBOX_ENABLED", raising=False)
    monkeypatch.delenv("XIAOPU_SECRET_KEY", raising=False)
    monkeypatch.delenv("XIAOPU_FINGERPRINT_SALT", raising=False)
    with pytest.raises(SystemExit, match="XIAOPU_ENV=production needs XIAOPU_"):
        load_config(service)
    monkeypatch.setenv("XIAOPU_SECRET_KEY", "shared-by-every-gateway")
    monkeypatch.setenv("XIAOPU_FINGERPRINT_SALT", "shared-by-every-service")
    assert load_config(service)["XIAOPU_ENV"] == "production"


def test_an_unknown_provider_stops_orders_at_start():
    from orders.payments import provider_from_config

    with pytest.raises(SystemExit, match="no adapter"):
        provider_from_config({"PAYMENT_PROVIDER": "acme", "PAYMENT_PROVIDER_SECRET": "s"})


@pytest.mark.parametrize(
    "config, enabled",
    [
        ({}, False),
        ({"XIAOPU_TEST_MODE": 1}, True),
        ({"PAYMENT_PROVIDER": "sandbox"}, False),
        ({"PAYMENT_PROVIDER": "sandbox", "PAYMENT_SANDBOX_ENABLED": 1}, True),
        ({"PAYMENT_PROVIDER": "acme", "PAYMENT_SANDBOX_ENABLED": 1}, False),
        ({"XIAOPU_ENV": "production", "XIAOPU_TEST_MODE": 1}, False),
        (
            {
                "XIAOPU_ENV": "production",
                "PAYMENT_PROVIDER": "sandbox",
                "PAYMENT_SANDBOX_ENABLED": 1,
            },
            False,
        ),
    ],
)
def test_the_sandbox_pay_shortcut_exists_only_where_configured(config, enabled):
    assert sandbox_pay_enabled(config) is enabled


def test_make_run_generates_the_payment_secret_once(tmp_path, monkeypatch):
    from scripts.platform import payment_env

    monkeypatch.delenv("PAYMENT_SANDBOX_SECRET", raising=False)
    first = payment_env(tmp_path, {})
    assert len(first["PAYMENT_SANDBOX_SECRET"]) >= 32
    assert (tmp_path / "payment.secret").stat().st_mode & 0o777 == 0o600
    assert payment_env(tmp_path, {}) == first  # kept across restarts
    assert first["PAYMENT_PROVIDER"] == "sandbox" and first["PAYMENT_SANDBOX_ENABLED"] == "1"
    production = payment_env(tmp_path, {"XIAOPU_ENV": "production"})
    assert "PAYMENT_SANDBOX_ENABLED" not in production and "PAYMENT_PROVIDER" not in production


def test_event_retries_double_from_a_fifth_of_a_second_up_to_the_cap():
    assert [retry_delay_seconds(n, 300) for n in (1, 2, 3, 4)] == [0.2, 0.4, 0.8, 1.6]
    assert retry_delay_seconds(12, 300) == 300 and retry_delay_seconds(200, 300) == 300


def test_a_failing_event_is_retried_until_the_horizon_then_parked():
    horizon, cap, first = 3600.0, 300.0, 1000.0
    now, attempt, delays = first, 0, []
    while True:
        attempt += 1
        delay = retry_plan(attempt, first, now, horizon, cap)
        if delay is None:
            break
        delays.append(delay)
        now += delay
    assert delays[:4] == [0.2, 0.4, 0.8, 1.6]
    assert max(delays) == cap
    assert now - first == pytest.approx(horizon)  # the last try happens at the horizon
    # a 60-second outage is far inside the horizon: still retrying, in short steps
    assert retry_plan(9, first, first + 60, horizon, cap) == pytest.approx(51.2)
    # the optional attempt cap (tests) parks earlier
    assert retry_plan(3, first, first + 1, horizon, cap, max_attempts=3) is None


def test_every_service_reads_the_retry_horizon_and_pool_settings(monkeypatch):
    monkeypatch.setenv("XIAOPU_EVENT_RETRY_HORIZON_SECONDS", "7200")
    for service in SERVICES:
        config = load_config(service)
        assert config["XIAOPU_EVENT_RETRY_HORIZON_SECONDS"] == 7200
        assert config["XIAOPU_EVENT_RETRY_MAX_DELAY_SECONDS"] == 300
        assert (config["DB_POOL_SIZE"], config["DB_POOL_OVERFLOW"], config["DB_POOL_TIMEOUT"]) == (
            10,
            0,
            3,
        )
        assert "XIAOPU_EVENT_MAX_ATTEMPTS" not in config
