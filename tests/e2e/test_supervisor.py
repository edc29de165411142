"""``make run`` (scripts/platform.py) as a supervisor, for real: every service a process on the
real RabbitMQ (a vhost of its own) and SQLite files of its own, the gateway on a free port.

Killing a service (SIGKILL) gets it restarted and the platform healthy again; a second platform
on the same port (or the same data directory) is refused before it starts anything; Ctrl-C stops
every process, the restarted one included, without a traceback."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from scripts.launcher import SERVICES, free_port
from shared.testing import wait_for

ROOT = Path(__file__).resolve().parents[2]
UP_TIMEOUT = 120  # seconds for the first start (two cores shared with other test runs)


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def alive(pid: int) -> bool:
    """A live (not zombie) process with this pid that runs a Xiaopu service."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and b"shared.run" in cmdline


class Supervised:
    def __init__(self, env: dict[str, str], log: Path):
        self.env, self.log = env, log
        self.url = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "scripts/platform.py"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # like a terminal's foreground job: we send its SIGINT
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def pids(self) -> dict[str, int]:
        """Every service's current pid: the banner's, then each restart's."""
        text = self.output()
        banner = re.search(r"^processes: (.*)$", text, re.M)
        assert banner, text[-3000:]
        pids = {name: int(pid) for name, pid in re.findall(r"(\w+) (\d+)", banner.group(1))}
        for name, pid in re.findall(r"^restarted (\w+) \(pid (\d+)\)$", text, re.M):
            pids[name] = int(pid)
        return pids

    def healthy(self) -> bool:
        try:
            resp = requests.get(f"{self.url}/api/v1/health", timeout=5)
        except requests.RequestException:
            return False
        return resp.status_code == 200 and resp.json()["status"] == "ok"


@pytest.fixture(scope="module")
def supervised(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("supervised")
    vhost = f"xt_supervisor_{secrets.token_hex(4)}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    env = {
        **os.environ,
        "GATEWAY_PORT": str(free_port()),
        "AMQP_URI": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "XIAOPU_DATA_DIR": str(tmp / "data"),
        "XIAOPU_ADMIN_TOKEN": secrets.token_urlsafe(16),
        "XIAOPU_SECRET_KEY": secrets.token_urlsafe(16),
        "XIAOPU_TEST_MODE": "1",
        "XIAOPU_STOP_GRACE": "8",
        "LOG_LEVEL": "WARNING",
    }
    env.update({f"{s.upper()}_DATABASE_URL": f"sqlite:///{tmp}/{s}.db" for s in SERVICES})
    platform = Supervised(env, tmp / "platform.log")
    platform.start()
    try:
        assert platform.proc is not None
        wait_for(
            lambda: "Xiaopu is up" in platform.output() or platform.proc.poll() is not None,
            timeout=UP_TIMEOUT,
        )
        assert "Xiaopu is up" in platform.output(), platform.output()[-3000:]
        yield platform
    finally:
        proc = platform.proc
        assert proc is not None
        if proc.poll() is None:  # a test failed before the stop test: stop it the same way
            os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        rabbitmqctl("delete_vhost", vhost)


def test_the_banner_says_the_admin_token_came_from_the_environment(supervised):
    out = supervised.output()
    token = supervised.env["XIAOPU_ADMIN_TOKEN"]
    assert f"admin token: {token}  (from the environment (XIAOPU_ADMIN_TOKEN)" in out
    assert "admin.token" not in out
    assert supervised.healthy()


def test_a_killed_service_is_restarted_and_the_platform_recovers(supervised):
    before = supervised.pids()
    assert set(before) == set(SERVICES) | {"gateway"}
    os.kill(before["orders"], signal.SIGKILL)
    wait_for(lambda: supervised.pids()["orders"] != before["orders"], timeout=30)
    after = supervised.pids()
    assert alive(after["orders"]) and not alive(before["orders"])
    assert f"the orders process (pid {before['orders']}) exited with -9" in supervised.output()
    wait_for(supervised.healthy, timeout=60)
    assert {n: p for n, p in after.items() if n != "orders"} == {
        n: p for n, p in before.items() if n != "orders"
    }


def test_a_second_platform_on_the_same_port_is_refused_before_it_starts_anything(
    supervised, tmp_path
):
    second = subprocess.run(
        [sys.executable, "scripts/platform.py"],
        cwd=ROOT,
        env={**supervised.env, "XIAOPU_DATA_DIR": str(tmp_path / "other-data")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 2
    port = supervised.env["GATEWAY_PORT"]
    assert f"refusing to start: port {port} on 127.0.0.1 is already in use" in second.stdout
    assert "another `make run` is running" in second.stdout
    assert "migrating" not in second.stdout and "Traceback" not in second.stderr
    assert supervised.healthy()


def test_a_second_platform_on_the_same_data_directory_is_refused(supervised):
    second = subprocess.run(
        [sys.executable, "scripts/platform.py"],
        cwd=ROOT,
        env={**supervised.env, "GATEWAY_PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 2
    assert f"supervisor pid {supervised.proc.pid}" in second.stdout
    assert "migrating" not in second.stdout


def test_ctrl_c_stops_every_process_without_a_traceback(supervised):
    pids = supervised.pids()
    everything = set(pids.values()) | {
        int(p) for p in re.findall(r"\(pid (\d+)\) exited", supervised.output())
    }
    proc = supervised.proc
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(60) == 0
    assert time.monotonic() - started < 8 * 2 + 5  # two grace periods at most
    left = [pid for pid in everything if alive(pid)]
    assert left == [], f"orphans: {left}"
    out = supervised.output()
    assert "stopped: every process of the platform has exited" in out
    assert "Traceback" not in out and "re-send" not in out
    assert not supervised.healthy()
