"""docker-compose.yml cannot run here (no Docker engine), so it is checked statically."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ("catalog", "shop", "share", "orders", "payouts", "identity", "messages")
VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::([^}]*))?\}")


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def config_vars(service: str) -> dict[str, str | None]:
    text = (ROOT / "services" / service / service / "config.yml").read_text()
    return {m.group(1): m.group(2) for m in VAR.finditer(text)}


def test_compose_runs_every_service_with_broker_and_database():
    services = compose()["services"]
    assert set(DOMAIN) | {"gateway", "rabbitmq", "postgres"} <= set(services)
    assert "management" in services["rabbitmq"]["image"]
    assert "8000:8000" in services["gateway"]["ports"]
    for name in DOMAIN + ("gateway",):
        svc = services[name]
        assert svc["build"] == "." and svc["command"] == [name], name
        assert svc["healthcheck"]["test"][-1] == name, name


def test_each_domain_service_has_its_own_database_and_user():
    services = compose()["services"]
    init = (ROOT / "docker" / "postgres" / "init.sql").read_text()
    seen = set()
    for name in DOMAIN:
        url = urlparse(services[name]["environment"][f"{name.upper()}_DATABASE_URL"])
        db, user = url.path.lstrip("/"), url.username
        assert (db, user) == (name, name)
        assert f"CREATE DATABASE {db}" in init and f"CREATE USER {user}" in init
        seen.add(db)
    assert len(seen) == len(DOMAIN)


def test_every_variable_a_service_needs_is_set_in_its_container():
    """A ``${VAR}`` in a service's config.yml without a default must be set in compose, and so
    must every database URL (the SQLite default is for a laptop, not for containers)."""
    services = compose()["services"]
    for name in DOMAIN + ("gateway",):
        env = services[name]["environment"]
        assert env["AMQP_URI"].startswith("amqp://") and "@rabbitmq:" in env["AMQP_URI"]
        for var, default in config_vars(name).items():
            if var.endswith("_DATABASE_URL") or default is None:
                assert var in env, f"{name} reads {var} but compose does not set it"
    gateway_env = services["gateway"]["environment"]
    for var in ("XIAOPU_ADMIN_TOKEN", "XIAOPU_SECRET_KEY", "GATEWAY_HOST", "GATEWAY_PORT"):
        assert var in gateway_env


def test_production_compose_never_enables_test_mode():
    for name in DOMAIN + ("gateway",):
        env = compose()["services"][name]["environment"]
        assert str(env["XIAOPU_TEST_MODE"]) == "0" and env["XIAOPU_ENV"] == "production"


def test_one_image_installs_the_cjk_font_and_runs_the_chosen_service():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "fonts-wqy-microhei" in dockerfile
    assert '"shared.run"' in dockerfile
