"""Root test configuration: monkey-patch first, then the fixtures every tier shares.

* ``make_database(service)`` — a fresh, migrated database for one service: PostgreSQL
  (``xt_<service>_<random>``, dropped afterwards) by default, a SQLite file when
  ``XIAOPU_TEST_DB=sqlite``.
* ``service_config(service, **overrides)`` — the service's real config.yml pointed at this
  test's RabbitMQ vhost (nameko's ``rabbit_config``) and a fresh database.
* ``start_service(service)`` — a running nameko container of the real service class.
* ``gateway`` — the real gateway container on a free port, speaking HTTP (``gateway.url``).
"""

import eventlet

eventlet.monkey_patch()  # noqa: E402  must precede every other import (STYLE.md traps)

import os  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
from pathlib import Path  # noqa: E402

import psycopg2  # noqa: E402
import pytest  # noqa: E402

from shared import clock  # noqa: E402
from shared.config import load_config  # noqa: E402

# No payment secret is built in (orders' config.yml): this run signs sandbox callbacks with its
# own random one, read by every orders config the tests load (and by the e2e platform).
os.environ.setdefault("PAYMENT_SANDBOX_SECRET", "test-" + secrets.token_hex(16))

TEST_DB = os.environ.get("XIAOPU_TEST_DB", "postgres")
PG_ADMIN_DSN = os.environ.get("XIAOPU_TEST_PG_DSN", "dbname=postgres user=postgres host=127.0.0.1")
PG_URL_BASE = os.environ.get("XIAOPU_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")


def pytest_collection_modifyitems(config, items):
    """Mark tests by their folder: unit/, integration/, e2e/ (and skip postgres_only on SQLite).
    A unit/ test's PostgreSQL case (``postgres_only``: a handler's PostgreSQL branch run on a
    real database) is an integration test: ``make test-unit`` needs no database server."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in ("unit", "integration", "e2e"):
            if tier in parts:
                if tier == "unit" and item.get_closest_marker("postgres_only"):
                    tier = "integration"
                item.add_marker(getattr(pytest.mark, tier))
        if TEST_DB == "sqlite" and item.get_closest_marker("postgres_only"):
            item.add_marker(
                pytest.mark.skip(
                    reason="needs PostgreSQL row locks; runs in the PostgreSQL pass of `make test`"
                )
            )


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item, settings):
    """pytest-timeout's ``signal`` method, which it would not use here: after
    ``eventlet.monkey_patch()`` the main greenlet no longer counts as the main thread, so the
    plugin falls back to its ``thread`` method — a green timer that, on expiry, ends the whole
    run with ``os._exit``. SIGALRM instead fails only the stalled test (the exception reaches the
    test's greenlet through the hub, which eventlet restarts) and the run goes on."""
    import pytest_timeout

    if settings.method != "signal":
        return None

    def on_alarm(signum, frame):
        __tracebackhide__ = True
        pytest_timeout.timeout_sigalrm(item, settings)

    def cancel():
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)

    item.cancel_timeout = cancel
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
    return True


@pytest.fixture(autouse=True)
def _real_clock():
    clock.reset()
    yield
    clock.reset()


def _pg_admin():
    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    return conn


def create_pg_database(prefix: str) -> tuple[str, str]:
    name = f"xt_{prefix}_{secrets.token_hex(4)}"
    conn = _pg_admin()
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return name, f"{PG_URL_BASE}/{name}"


def drop_pg_database(name: str) -> None:
    conn = _pg_admin()
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


@pytest.fixture
def make_database(tmp_path):
    from shared.migrations import upgrade

    created: list[str] = []

    def make(service: str, migrate: bool = True) -> str:
        if TEST_DB == "sqlite":
            url = f"sqlite:///{tmp_path}/{service}-{secrets.token_hex(3)}.db"
        else:
            name, url = create_pg_database(service)
            created.append(name)
        if migrate:
            upgrade(service, url)
        return url

    yield make
    for name in created:
        drop_pg_database(name)


@pytest.fixture
def service_config(rabbit_config, make_database):
    # orders' HTTP door (shared/httprpc.py), one address per test: every orders instance the
    # test starts listens on it, every gateway sends checkout and pay to it
    orders_door = f"127.0.0.1:{free_port()}"

    def make(service: str, database_url: str | None = None, **overrides) -> dict:
        base = {
            "AMQP_URI": rabbit_config["AMQP_URI"],
            "XIAOPU_TEST_MODE": 1,
            "OUTBOX_POLL_SECONDS": 0.2,
        }
        if service == "orders":
            base["XIAOPU_HTTP_RPC_ADDRESS"] = orders_door
        if service == "gateway":
            base["XIAOPU_HTTP_RPC_ORDERS"] = f"http://{orders_door}"
        if service != "gateway":
            base["DATABASE_URL"] = database_url or make_database(service)
        return load_config(service, {**base, **overrides})

    return make


@pytest.fixture
def start_service(container_factory, service_config):
    from shared.run import service_class

    def start(service: str, **overrides):
        container = container_factory(service_class(service), service_config(service, **overrides))
        container.start()
        return container

    return start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayHandle:
    def __init__(self, container, url: str, admin_token: str):
        self.container = container
        self.url = url
        self.admin_token = admin_token
        self.tokens = container.config["_tokens"]

    def headers(self, role: str | None = None, sub=None) -> dict:
        if role == "admin":
            return {"Authorization": f"Bearer {self.admin_token}"}
        if role:
            return {"Authorization": f"Bearer {self.tokens.issue(role, sub)}"}
        return {}

    def visitor_cookie(self, visitor: str) -> dict:
        """The ``xp_vid`` cookie this gateway would issue for ``visitor`` (22 url-safe chars):
        unsigned ones are ignored (gateway/client.py)."""
        from gateway.client import ClientIdentity

        secret = str(self.container.config["XIAOPU_SECRET_KEY"]).encode()
        return {"xp_vid": ClientIdentity((), secret).sign(visitor)}


@pytest.fixture
def gateway(request, container_factory, service_config):
    """The real gateway on a free port, in this test's vhost. Mint tokens with
    ``gateway.headers("member", member_id)``; ``gateway.headers("admin")`` for the admin.
    ``@pytest.mark.gateway_config(KEY=value)`` adds configuration (e.g. trusted proxies)."""
    from gateway.auth import TokenService
    from gateway.service import GatewayService

    port = free_port()
    admin, secret = "test-admin-" + secrets.token_hex(8), secrets.token_hex(16)
    marker = request.node.get_closest_marker("gateway_config")
    extra = dict(marker.kwargs) if marker else {}
    config = service_config(
        "gateway",
        WEB_SERVER_ADDRESS=f"127.0.0.1:{port}",
        XIAOPU_ADMIN_TOKEN=admin,
        XIAOPU_SECRET_KEY=secret,
        XIAOPU_PUBLIC_URL=f"http://127.0.0.1:{port}",
        XIAOPU_RPC_TIMEOUT=5,
        # the rate limits' buckets in the machine's Redis: this gateway's own, so test runs
        # on one machine never share (or drain) each other's
        RATE_LIMITS={"prefix": f"xprl-test-{secrets.token_hex(6)}"},
        **extra,
    )
    config["_tokens"] = TokenService(secret, admin, 3600)
    container = container_factory(GatewayService, config)
    container.start()
    return GatewayHandle(container, f"http://127.0.0.1:{port}", admin)
