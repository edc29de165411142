"""Make sure the real RabbitMQ (with its management API, which the test fixtures use to create
an isolated vhost per test) and PostgreSQL are up before the tests run; start them if they are
installed but stopped. Prints one clear line for anything it cannot fix."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), 1):
            return True
    except OSError:
        return False


def wait_port(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(port):
            return True
        time.sleep(1)
    return False


def ensure_rabbitmq() -> None:
    if not port_open(5672):
        if not shutil.which("rabbitmq-server"):
            sys.exit(
                "RabbitMQ is not running on 127.0.0.1:5672 and rabbitmq-server is not "
                "installed: apt-get install rabbitmq-server"
            )
        print("starting rabbitmq-server ...", flush=True)
        subprocess.run(["rabbitmq-server", "-detached"], check=False)
        if not wait_port(5672, 120):
            sys.exit("RabbitMQ did not come up on 5672 within 120s")
    if not port_open(15672):
        print("enabling the RabbitMQ management plugin ...", flush=True)
        subprocess.run(
            ["rabbitmq-plugins", "enable", "rabbitmq_management"],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        if not wait_port(15672, 90):
            sys.exit("the RabbitMQ management API did not come up on 15672")


def ensure_postgres() -> None:
    if port_open(5432):
        return
    versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
    if not versions or not shutil.which("pg_ctlcluster"):
        sys.exit("PostgreSQL is not running on 127.0.0.1:5432 and no local cluster is installed")
    print("starting PostgreSQL ...", flush=True)
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"], check=False
    )
    if not wait_port(5432, 60):
        sys.exit("PostgreSQL did not come up on 5432 within 60s")


def ensure_redis() -> None:
    """The gateways' shared rate-limit buckets (gateway/ratelimit.py); keeps nothing on disk."""
    if port_open(6379):
        return
    if not shutil.which("redis-server"):
        sys.exit("Redis is not running on 127.0.0.1:6379 and redis-server is not installed")
    print("starting redis-server ...", flush=True)
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379"]
        + ["--save", "", "--appendonly", "no"],
        check=False,
        stdout=subprocess.DEVNULL,
    )
    if not wait_port(6379, 30):
        sys.exit("Redis did not come up on 6379 within 30s")


def ensure_chromium() -> None:
    """The browser tests drive Debian's chromium (never a downloaded browser build): install the
    Debian package when it is missing and we may (root with apt-get), else say what to do."""
    if shutil.which("chromium"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit("chromium is not installed: apt-get install chromium (the browser tests need it)")
    print("installing chromium (Debian package) for the browser tests ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "chromium"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


if __name__ == "__main__":
    ensure_chromium()
    ensure_rabbitmq()
    ensure_postgres()
    ensure_redis()
    print("RabbitMQ (with management), PostgreSQL and Redis are up", flush=True)
