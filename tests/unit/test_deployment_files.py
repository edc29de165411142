"""docker-compose.yml cannot run here (no Docker engine), so it is checked statically."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ("catalog", "shop", "share", "orders", "payouts", "identity", "messages")
VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::([^}]*))?\}")


def interpolated(value: str) -> str:
    """A compose value with every ``${VAR...}`` replaced by a placeholder (as if set)."""
    return re.sub(r"\$\{[^}]*\}", "x", value)


def compose() -> dict:
    """The compose file as compose reads it: ``${VAR}`` left as text. (nameko's config parser,
    once set up in this process by any test that loads a service config, registers an implicit
    ``!env_var`` resolver on PyYAML's SafeLoader that would expand them from this environment.)"""

    class PlainLoader(yaml.SafeLoader):
        pass

    PlainLoader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if not tag.startswith("!")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return yaml.load((ROOT / "docker-compose.yml").read_text(), Loader=PlainLoader)


def config_vars(service: str) -> dict[str, str | None]:
    text = (ROOT / "services" / service / service / "config.yml").read_text()
    return {m.group(1): m.group(2) for m in VAR.finditer(text)}


def test_compose_runs_every_service_with_broker_and_database():
    services = compose()["services"]
    assert set(DOMAIN) | {"gateway", "rabbitmq", "postgres", "proxy"} <= set(services)
    for name in DOMAIN + ("gateway",):
        svc = services[name]
        assert svc["build"] == "." and svc["command"] == [name], name
        assert svc["healthcheck"]["test"][-1] == name, name


def test_each_domain_service_has_its_own_database_and_user():
    services = compose()["services"]
    init = (ROOT / "docker" / "postgres" / "init.sh").read_text()
    assert 'CREATE USER :"user"' in init and 'CREATE DATABASE :"user" OWNER :"user"' in init
    seen = set()
    for name in DOMAIN:
        url = urlparse(interpolated(services[name]["environment"][f"{name.upper()}_DATABASE_URL"]))
        db, user = url.path.lstrip("/"), url.username
        assert (db, user) == (name, name)
        assert name in init.split("for svc in ", 1)[1].split(";", 1)[0]
        seen.add(db)
    assert len(seen) == len(DOMAIN)


def test_every_variable_a_service_needs_is_set_in_its_container():
    """A ``${VAR}`` in a service's config.yml without a default must be set in compose, and so
    must every database URL (the SQLite default is for a laptop, not for containers)."""
    services = compose()["services"]
    for name in DOMAIN + ("gateway",):
        env = services[name]["environment"]
        amqp = urlparse(interpolated(env["AMQP_URI"]))
        assert amqp.scheme == "amqp" and amqp.hostname == "rabbitmq"
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


# -- issue 18: hardening -------------------------------------------------------------------------
def test_no_credential_is_written_in_the_compose_file():
    """Every password, token and secret is ``${VAR:?...}`` from the environment (or an env
    file), never a literal; RabbitMQ has its own user, not guest."""
    services = compose()["services"]
    secret = re.compile(r"(PASSWORD|PASS|SECRET|TOKEN|SALT)$")
    for name, svc in services.items():
        for key, value in (svc.get("environment") or {}).items():
            if secret.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", str(value)), (name, key)
    for name in DOMAIN:
        url = urlparse(services[name]["environment"][f"{name.upper()}_DATABASE_URL"])
        assert url.password == "${" + f"{name.upper()}_DB_PASSWORD" + "}", name
    amqp = services["gateway"]["environment"]["AMQP_URI"]
    assert "guest" not in amqp and "${RABBITMQ_PASSWORD:?" in amqp
    rabbit = services["rabbitmq"]
    assert rabbit["environment"]["RABBITMQ_DEFAULT_USER"] == "${RABBITMQ_USER:-xiaopu}"
    assert rabbit["environment"]["RABBITMQ_DEFAULT_PASS"].startswith("${RABBITMQ_PASSWORD:?")
    for var in ("POSTGRES_PASSWORD",) + tuple(f"{n.upper()}_DB_PASSWORD" for n in DOMAIN):
        assert services["postgres"]["environment"][var].startswith("${" + var + ":?")


def test_only_the_proxy_publishes_a_port_and_rabbitmq_has_no_management():
    services = compose()["services"]
    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"proxy"}
    assert services["proxy"]["ports"] == ["${XIAOPU_HTTP_PORT:-8000}:8080"]
    assert "management" not in services["rabbitmq"]["image"]
    assert "15672" not in (ROOT / "docker-compose.yml").read_text()


def test_the_gateway_runs_as_replicas_behind_the_proxy():
    services = compose()["services"]
    gateway, proxy = services["gateway"], services["proxy"]
    assert gateway["deploy"]["replicas"] >= 2 and "ports" not in gateway
    assert proxy["image"].startswith("nginx:")
    assert proxy["depends_on"]["gateway"]["condition"] == "service_healthy"
    conf = (ROOT / "docker" / "nginx" / "nginx.conf").read_text()
    assert "server gateway:8000 resolve" in conf and "proxy_pass http://gateways;" in conf
    assert "proxy_set_header X-Forwarded-For" in conf and "X-Request-Id" in conf
    assert "location = /metrics { return 404; }" in conf
    # the gateways believe X-Forwarded-For from the proxy's fixed address only
    address = proxy["networks"]["default"]["ipv4_address"]
    assert address + "/32" in gateway["environment"]["XIAOPU_TRUSTED_PROXIES"]


def test_every_service_has_a_grace_period_above_the_drain_and_a_self_healthcheck():
    services = compose()["services"]
    for name in DOMAIN + ("gateway",):
        svc = services[name]
        grace = int(str(svc["stop_grace_period"]).rstrip("s"))
        drain = float(svc["environment"]["XIAOPU_DRAIN_SECONDS"])
        assert grace > drain + 2, name  # drain + the gateway's exit margin (gateway/drain.py)
        # shared.healthcheck reads this container's own heartbeat file (shared/liveness.py)
        assert svc["healthcheck"]["test"] == ["CMD", "python", "-m", "shared.healthcheck", name]
        assert svc["init"] is True
        assert svc["deploy"]["resources"]["limits"]["memory"]
        env = svc["environment"]
        assert env["LOG_FORMAT"] == "json" and env["METRICS_PORT"] == "9100"
    assert "stop_grace_period" in services["proxy"]


def test_the_runtime_image_installs_no_test_dependencies():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements-dev.txt" not in dockerfile.replace(
        "requirements-dev.txt (pytest, hypothesis, linters) is never installed here", ""
    )
    assert "pip install --no-cache-dir -r requirements.txt" in dockerfile
    runtime = (ROOT / "requirements.txt").read_text().lower()
    for tool in ("pytest", "hypothesis", "ruff", "mypy", "schemathesis", "playwright"):
        assert not re.search(rf"^{tool}\b", runtime, re.M), tool
    assert re.search(r"^prometheus_client==", runtime, re.M)
    assert "XIAOPU_STATE_DIR=/tmp/xiaopu" in dockerfile


def test_the_backup_script_dumps_each_service_on_its_own():
    script = (ROOT / "scripts" / "backup.sh").read_text()
    assert script.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in script
    assert 'SERVICES=${XIAOPU_BACKUP_SERVICES:-"' + " ".join(DOMAIN) + '"}' in script
    assert 'pg_dump --format=custom --no-owner --no-privileges --file "$DEST/$svc.dump"' in script
    readme = (ROOT / "README.md").read_text()
    operations = readme.split("## Operations", 1)[1]
    for needed in ("scripts/backup.sh", "pg_restore", "outbox", "published_at = NULL"):
        assert needed in operations, needed
