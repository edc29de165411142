"""Per-instance health and the gateway's drained shutdown, with real processes.

Two orders instances (scripts/launcher.py Platform, this test's vhost, database and state
directory): each one's own healthcheck passes, the gateway's health lists both; killing one makes
its healthcheck fail while the other's still passes, and the gateway stops listing it.

A gateway process SIGTERMed during a slow request: new connections are refused at once, the
request in flight completes, the process exits within XIAOPU_DRAIN_SECONDS (+ the 2 s margin)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import eventlet
import pytest
import requests
from nameko.rpc import rpc

from scripts.launcher import Platform, free_port
from shared import healthcheck
from shared.testing import wait_for

ROOT = Path(__file__).resolve().parents[2]


def instance_healthy(pid: int, state_dir: Path) -> bool:
    return healthcheck.main(["orders", "--pid", str(pid)]) == 0


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    path = tmp_path / "run"
    monkeypatch.setenv("XIAOPU_STATE_DIR", str(path))
    return path


def test_each_orders_instance_reports_its_own_health(
    rabbit_config, make_database, gateway, state_dir, tmp_path
):
    platform = Platform(
        {
            "AMQP_URI": rabbit_config["AMQP_URI"],
            "ORDERS_DATABASE_URL": make_database("orders"),
            "XIAOPU_STATE_DIR": str(state_dir),
            "XIAOPU_HEARTBEAT_SECONDS": "0.5",
            "XIAOPU_TEST_MODE": "1",
        },
        log_dir=tmp_path / "logs",
        grace=5,
    )
    try:
        platform.start_service("orders")
        platform.start_service("orders", key="orders-2")
        first, second = platform.procs["orders"].pid, platform.procs["orders-2"].pid
        wait_for(lambda: instance_healthy(first, state_dir), timeout=60)
        wait_for(lambda: instance_healthy(second, state_dir), timeout=60)

        def listed() -> list[str]:
            body = requests.get(f"{gateway.url}/api/v1/health", timeout=10).json()
            return [i["instance"] for i in body["instances"]["orders"] if i["ready"]]

        host = socket.gethostname()
        wait_for(lambda: sorted(listed()) == sorted([f"{host}:{first}", f"{host}:{second}"]))
        answer = requests.get(f"{gateway.url}/api/v1/health", timeout=10).json()
        assert answer["detail"]["orders"]["instance"] in listed()

        platform.stop_service("orders-2", signal.SIGKILL)
        assert not instance_healthy(second, state_dir)
        assert instance_healthy(first, state_dir)
        # the container's command line, as compose runs it
        cli = subprocess.run(
            [sys.executable, "-m", "shared.healthcheck", "orders", "--pid", str(second)],
            cwd=ROOT,
            env=platform.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 1 and f"process {second} is not running" in cli.stderr
        wait_for(lambda: listed() == [f"{host}:{first}"], timeout=15)
    finally:
        platform.stop()


class SlowCatalog:
    """Stands in for catalog: ``echo`` takes ``SLOW`` seconds."""

    name = "catalog"
    started = eventlet.event.Event()
    SLOW = 3.0

    @rpc
    def echo(self, payload=None):
        if not SlowCatalog.started.ready():
            SlowCatalog.started.send(True)
        eventlet.sleep(SlowCatalog.SLOW)
        return payload


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def test_a_sigtermed_gateway_finishes_the_request_in_flight_and_refuses_new_ones(
    rabbit_config, container_factory, state_dir, tmp_path
):
    SlowCatalog.started = eventlet.event.Event()
    container_factory(SlowCatalog, rabbit_config).start()
    port, drain = free_port(), 6
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path]),
        "AMQP_URI": rabbit_config["AMQP_URI"],
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "XIAOPU_ADMIN_TOKEN": "adm-" + secrets.token_hex(8),
        "XIAOPU_SECRET_KEY": secrets.token_hex(16),
        "XIAOPU_DRAIN_SECONDS": str(drain),
        "XIAOPU_RPC_TIMEOUT": "10",
    }
    with open(tmp_path / "gateway.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.run", "gateway"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                return requests.get(f"{url}/api/v1/openapi.json", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(up, timeout=60)
        slow = eventlet.spawn(requests.get, f"{url}/api/v1/echo?q=slow", timeout=30)
        SlowCatalog.started.wait()
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        wait_for(lambda: refused(port), timeout=2)
        assert not slow.dead, "the slow request ended before new connections were refused"
        resp = slow.wait()
        assert resp.status_code == 200 and resp.json() == {"echo": "slow"}
        assert proc.wait(timeout=drain + 10) == 0
        assert time.monotonic() - sent < drain + 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = (tmp_path / "gateway.log").read_text()
    assert "draining: new connections refused, 1 request(s) in flight" in text, text
