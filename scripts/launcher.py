"""Start the whole platform as separate processes: used by ``make run``, the end-to-end tests,
the demo and the benchmarks, so they all meet the platform the same way production does."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("catalog", "shop", "share", "orders", "payouts", "identity")
PYTHONPATH = os.pathsep.join(
    [str(ROOT)] + [str(ROOT / "services" / s) for s in SERVICES + ("gateway",)]
)


def broker_reachable(amqp_uri: str) -> bool:
    from urllib.parse import urlparse

    url = urlparse(amqp_uri)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 5672), 2):
            return True
    except OSError:
        return False


def ensure_broker(amqp_uri: str, wait: float = 90) -> None:
    if broker_reachable(amqp_uri):
        return
    if shutil.which("rabbitmq-server"):
        print(
            f"no RabbitMQ answers at {amqp_uri}; starting the local rabbitmq-server ...", flush=True
        )
        subprocess.run(["rabbitmq-server", "-detached"], check=False)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if broker_reachable(amqp_uri):
                time.sleep(2)
                return
            time.sleep(1)
    raise SystemExit(
        f"No RabbitMQ answers at {amqp_uri}: start one (`rabbitmq-server -detached`, "
        "or `docker compose up rabbitmq`) or point AMQP_URI at yours."
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def secret_file(path: Path, env_name: str) -> str:
    if os.environ.get(env_name):
        return os.environ[env_name]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


class Platform:
    """Six services and the gateway, each its own process."""

    def __init__(
        self, env: dict[str, str] | None = None, log_dir: Path | None = None, quiet: bool = False
    ):
        self.env = {**os.environ, **(env or {})}
        self.env["PYTHONPATH"] = PYTHONPATH + (
            os.pathsep + self.env["PYTHONPATH"] if self.env.get("PYTHONPATH") else ""
        )
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.log_dir = log_dir
        self.quiet = quiet
        self.procs: dict[str, subprocess.Popen] = {}
        host = self.env.get("GATEWAY_HOST", "127.0.0.1")
        port = self.env.get("GATEWAY_PORT", "8000")
        self.base_url = f"http://{host}:{port}"

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "shared.migrations", "upgrade"],
            env=self.env,
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL if self.quiet else None,
        )

    def start_service(self, service: str) -> None:
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{service}.log", "ab")
        args = [sys.executable, "-m", "shared.run", service, "--no-migrate"]
        self.procs[service] = subprocess.Popen(
            args, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT if out else None
        )

    def start(self, timeout: float = 90) -> None:
        self.migrate()
        for service in SERVICES + ("gateway",):
            self.start_service(service)
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"the {name} process exited with {proc.returncode}")
            try:
                resp = requests.get(f"{self.base_url}/api/v1/health", timeout=5)
                last = resp.json()
                if resp.status_code == 200 and last.get("status") == "ok":
                    return last
            except (requests.RequestException, ValueError) as exc:
                last = str(exc)
            time.sleep(0.5)
        raise RuntimeError(f"the platform did not become healthy in {timeout}s: {last}")

    def stop_service(self, service: str, sig: int = signal.SIGTERM, wait: float = 15) -> None:
        proc = self.procs.pop(service, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        for service in ("gateway",) + SERVICES:
            self.stop_service(service)

    def wait(self) -> None:
        while self.procs:
            for name, proc in list(self.procs.items()):
                if proc.poll() is not None:
                    print(
                        f"the {name} process exited with {proc.returncode}; stopping the rest",
                        flush=True,
                    )
                    self.procs.pop(name)
                    self.stop()
                    return
            time.sleep(0.5)
