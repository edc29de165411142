"""Start the whole platform as separate processes: used by ``make run`` (through the
``Supervisor``), the end-to-end tests, the demo and the benchmarks, so they all meet the platform
the same way production does.

Every service runs in its own process group (its own session), so a Ctrl-C in the terminal
reaches only the supervisor, which then stops each group once, politely: SIGTERM, a grace period
(``XIAOPU_STOP_GRACE``, 10 s), SIGKILL for what is left. With ``die_with_parent`` a service also
gets SIGTERM from the kernel when its supervisor dies, even by SIGKILL: no orphans either way.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("catalog", "shop", "share", "orders", "payouts", "identity", "messages")
PYTHONPATH = os.pathsep.join(
    [str(ROOT)] + [str(ROOT / "services" / s) for s in SERVICES + ("gateway",)]
)
PR_SET_PDEATHSIG = 1


class PlatformFailed(RuntimeError):
    """The platform cannot be started or kept running; the message says why."""


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


_HANDED_OUT: set[int] = set()  # ports free_port gave this process (maybe not bound yet)


def free_port() -> int:
    """A port nothing listens on, and that this process has not handed out before: the
    kernel can give the same free port to two binds in a row, and the ports chosen for a
    platform (the gateway's, the orders door's, each service's metrics) are all picked before
    their processes bind them — a gateway port that was also a metrics port answered the
    benchmark's seeding with metrics text."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def port_in_use(host: str, port: int) -> bool:
    """True when something listens on host:port. A bind with SO_REUSEADDR fails on Linux only
    when a socket listens there (not for connections lingering in TIME_WAIT)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def secret_file(path: Path, env_name: str) -> str:
    return secret_with_source(path, env_name)[0]


def secret_with_source(path: Path, env_name: str) -> tuple[str, str]:
    """(value, where it came from): the environment, or ``path`` (written now if missing)."""
    if os.environ.get(env_name):
        return os.environ[env_name], f"from the environment ({env_name}); not written to disk"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
        return path.read_text().strip(), f"generated and written to {path}"
    return path.read_text().strip(), f"read from {path}"


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A preexec_fn: the kernel sends SIGTERM to the child when its parent dies (Linux)."""

    def setup() -> None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        except (OSError, AttributeError):  # not Linux: the supervisor's own stop() still applies
            return
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return setup


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the process group ``proc`` leads. Call it only while ``proc`` is not reaped
    (``poll()`` returned None): until then its group id cannot belong to anyone else."""
    try:
        os.killpg(proc.pid, sig)  # each service leads its own group (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


class Platform:
    """Seven services and the gateway, each its own process (and process group)."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        quiet: bool = False,
        die_with_parent: bool = False,
        grace: float | None = None,
        metrics: bool = False,
    ):
        self.env = {**os.environ, **(env or {})}
        self.env["PYTHONPATH"] = PYTHONPATH + (
            os.pathsep + self.env["PYTHONPATH"] if self.env.get("PYTHONPATH") else ""
        )
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        if "ORDERS_HTTP_RPC_ADDRESS" not in self.env:  # checkout and pay over HTTP (httprpc)
            address = f"127.0.0.1:{free_port()}"
            self.env["ORDERS_HTTP_RPC_ADDRESS"] = address
            self.env.setdefault("XIAOPU_HTTP_RPC_ORDERS", f"http://{address}")
        self.log_dir = log_dir
        self.quiet = quiet
        self.die_with_parent = die_with_parent
        self.grace = grace if grace is not None else float(self.env.get("XIAOPU_STOP_GRACE", 10))
        self.procs: dict[str, subprocess.Popen] = {}
        self.kinds: dict[str, str] = {}  # process key -> the service it runs
        self.instance_env: dict[str, dict[str, str]] = {}  # process key -> its own environment
        self.migrate_at_start: dict[str, bool] = {}  # process key -> migrates when it starts
        # metrics: each service process serves Prometheus metrics on a port of its own
        self.metrics = metrics
        self.metrics_ports: dict[str, int] = {}
        self.host = self.env.get("GATEWAY_HOST", "127.0.0.1")
        self.port = int(self.env.get("GATEWAY_PORT", "8000"))
        client_host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        self.base_url = f"http://{client_host}:{self.port}"

    def orders_door(self) -> dict[str, str]:
        """Orders' internal HTTP door as this platform set it (``shared/httprpc.py``): the
        environment a further process of this platform (another Platform starting a second
        gateway or orders) needs so that it serves or calls the same door."""
        return {
            k: self.env[k]
            for k in ("ORDERS_HTTP_RPC_ADDRESS", "XIAOPU_HTTP_RPC_ORDERS")
            if k in self.env
        }

    # -- processes ---------------------------------------------------------------------------
    def _popen(self, args: list[str], out, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            args,
            env={**self.env, **(env or {})},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            start_new_session=True,  # its own group: no terminal Ctrl-C, killed as a group
            preexec_fn=_die_with_parent(os.getpid()) if self.die_with_parent else None,
        )

    def _log(self, name: str):
        if self.log_dir is None:
            return subprocess.DEVNULL if self.quiet and name == "migrate" else None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return open(self.log_dir / f"{name}.log", "ab")

    def migrate(self, stop: threading.Event | None = None) -> None:
        """Apply every service's migrations in one process; raises PlatformFailed if it fails
        (or returns early, the process stopped, when ``stop`` is set meanwhile)."""
        out = self._log("migrate")
        proc = self._popen([sys.executable, "-m", "shared.migrations", "upgrade"], out)
        try:
            while proc.poll() is None:
                if stop is not None and stop.wait(0.2):
                    self._terminate({"migrate": proc})
                    return
                if stop is None:
                    proc.wait()
        finally:
            if out not in (None, subprocess.DEVNULL):
                out.close()
        if proc.returncode != 0:
            raise PlatformFailed(f"the migrations failed (exit {proc.returncode}): see above")

    def start_service(
        self,
        service: str,
        key: str | None = None,
        env: dict[str, str] | None = None,
        migrate: bool | None = None,
    ) -> None:
        """Start ``service``; ``key`` names a further instance of it (``orders-2``): its own
        process and log, the same queues and database (how nameko scales out). ``env``: more
        environment for this instance only (a second gateway's ``GATEWAY_PORT``); ``migrate``:
        the instance applies its migrations at start (under the advisory lock) instead of
        relying on ``migrate()``. Both are remembered, so a restart starts it the same way."""
        name = key or service
        if env is not None:
            self.instance_env[name] = dict(env)
        if migrate is not None:
            self.migrate_at_start[name] = migrate
        out = self._log(name)
        args = [sys.executable, "-m", "shared.run", service]
        if not self.migrate_at_start.get(name, False):
            args.append("--no-migrate")
        extra = dict(self.instance_env.get(name, {}))
        if self.metrics and service != "gateway":  # the gateway serves /metrics on its port
            port = self.metrics_ports.get(key or service) or free_port()
            self.metrics_ports[key or service] = port
            extra["METRICS_PORT"] = str(port)
        try:
            self.procs[key or service] = self._popen(args, out, extra)
            self.kinds[key or service] = service
        finally:
            if out not in (None, subprocess.DEVNULL):
                out.close()  # the child holds its own copy

    def start_all(self) -> None:
        for service in SERVICES + ("gateway",):
            self.start_service(service)

    def start(self, timeout: float = 90) -> None:
        """Migrate, start everything, wait until healthy (any exit is fatal: tests, benchmarks)."""
        self.migrate()
        self.start_all()
        self.wait_healthy(timeout)

    def health(self) -> tuple[bool, dict | str]:
        try:
            resp = requests.get(f"{self.base_url}/api/v1/health", timeout=5)
            body = resp.json()
        except (requests.RequestException, ValueError) as exc:
            return False, str(exc)
        return resp.status_code == 200 and body.get("status") == "ok", body

    def wait_healthy(
        self,
        timeout: float = 90,
        tick: Callable[[], None] | None = None,
        stop: threading.Event | None = None,
    ) -> dict:
        """Poll the gateway's health until ok. Without ``tick`` a process exiting is fatal; with
        it (the supervisor's check) a crashed process is restarted instead."""
        deadline = time.monotonic() + timeout
        last: dict | str | None = None
        while time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                raise PlatformFailed("interrupted while starting")
            if tick is None:
                for name, proc in self.procs.items():
                    if proc.poll() is not None:
                        raise PlatformFailed(f"the {name} process exited with {proc.returncode}")
            else:
                tick()
            healthy, last = self.health()
            if healthy:
                assert isinstance(last, dict)
                return last
            time.sleep(0.5)
        raise PlatformFailed(f"the platform did not become healthy in {timeout:.0f}s: {last}")

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items()}

    def check_invariants(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """The operator's invariant checker (``python -m shared.invariants``, ``make check``)
        on this platform, run with the environment its services run with (their databases,
        the broker); ``args``: the checker's options (``--json``). Exit 0: all hold."""
        return subprocess.run(
            [sys.executable, "-m", "shared.invariants", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def gateway_url(self, key: str = "gateway") -> str:
        """The base URL of the gateway process ``key`` (a second one has its own port)."""
        port = self.instance_env.get(key, {}).get("GATEWAY_PORT")
        if port is None:
            return self.base_url
        return f"{self.base_url.rsplit(':', 1)[0]}:{port}"

    # -- stopping ----------------------------------------------------------------------------
    def _terminate(
        self,
        procs: dict[str, subprocess.Popen],
        grace: float | None = None,
        hurry: threading.Event | None = None,
    ) -> None:
        """SIGTERM each process group once, wait up to ``grace`` seconds (cut short when
        ``hurry`` is set), then SIGKILL whatever is left of each group."""
        grace = self.grace if grace is None else grace
        for proc in procs.values():
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not (hurry is not None and hurry.is_set()):
            if all(proc.poll() is not None for proc in procs.values()):
                break
            time.sleep(0.1)
        for proc in procs.values():
            if proc.poll() is None:  # not reaped yet, so its group id cannot have been reused
                _signal_group(proc, signal.SIGKILL)
            proc.wait()

    def stop_service(self, service: str, sig: int = signal.SIGTERM, wait: float = 15) -> None:
        proc = self.procs.pop(service, None)
        if proc is None:
            return
        if sig != signal.SIGTERM and proc.poll() is None:
            _signal_group(proc, sig)
        self._terminate({service: proc}, wait)

    def stop(self, hurry: threading.Event | None = None) -> None:
        """The gateways first (they stop taking requests), then every service at once."""
        gateway = {n: p for n, p in self.procs.items() if self.kinds.get(n, n) == "gateway"}
        services = {n: p for n, p in self.procs.items() if n not in gateway}
        self._terminate(gateway, hurry=hurry)
        self._terminate(services, hurry=hurry)
        self.procs.clear()


class Supervisor:
    """Keeps every process of a ``Platform`` running: one that exits is started again after a
    back-off (1 s, doubling up to 30 s; back to 1 s once it has stayed up for ``stable_after``
    seconds). One that keeps crashing (``max_failures`` exits in a row without staying up) is a
    failure of the platform: ``check`` raises PlatformFailed and the caller stops everything."""

    def __init__(
        self,
        platform: Platform,
        first_delay: float = 1.0,
        max_delay: float = 30.0,
        stable_after: float = 60.0,
        max_failures: int = 6,
        say: Callable[[str], None] = lambda text: print(text, flush=True),
    ):
        self.platform = platform
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.stable_after = stable_after
        self.max_failures = max_failures
        self.say = say
        now = time.monotonic()
        self.started = {name: now for name in platform.procs}
        self.failures = {name: 0 for name in platform.procs}
        self.due: dict[str, float] = {}
        self.restarts = 0

    def check(self) -> None:
        now = time.monotonic()
        for name, proc in list(self.platform.procs.items()):
            if name in self.due:
                continue
            code = proc.poll()
            if code is None:
                if now - self.started.get(name, now) >= self.stable_after:
                    self.failures[name] = 0
                continue
            self.failures[name] = self.failures.get(name, 0) + 1
            if self.failures[name] > self.max_failures:
                raise PlatformFailed(
                    f"the {name} process keeps exiting (last exit {code}, "
                    f"{self.failures[name]} times in a row): giving up"
                )
            delay = min(self.max_delay, self.first_delay * 2 ** (self.failures[name] - 1))
            self.say(
                f"the {name} process (pid {proc.pid}) exited with {code}; "
                f"restarting it in {delay:.0f}s"
            )
            self.due[name] = now + delay
        for name, at in list(self.due.items()):
            if now >= at:
                del self.due[name]
                service = getattr(self.platform, "kinds", {}).get(name, name)
                if service == name:
                    self.platform.start_service(name)
                else:  # a further instance (``orders-2``)
                    self.platform.start_service(service, name)
                self.started[name] = time.monotonic()
                self.restarts += 1
                self.say(f"restarted {name} (pid {self.platform.procs[name].pid})")
