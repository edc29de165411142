"""``make run``: a small supervisor for the whole platform on one machine.

1. Refuses to start when the gateway's port (``GATEWAY_HOST``:``GATEWAY_PORT``, 127.0.0.1:8000)
   is taken or another platform uses the same data directory (``XIAOPU_DATA_DIR``), exit 2.
2. Migrates every service, starts the seven services and the gateway, each its own process.
3. Keeps them running: a process that exits is restarted with back-off (1 s doubling to 30 s).
4. Ctrl-C (or SIGTERM): stops everything once, gateway first, SIGKILL after a grace period
   (``XIAOPU_STOP_GRACE``, 10 s); a second Ctrl-C skips the grace. Exit 0.
   A failure (migrations, not healthy within ``XIAOPU_START_TIMEOUT`` s, a process that keeps
   crashing) stops everything too, exit 1. No process outlives the supervisor.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.launcher import (  # noqa: E402
    ROOT,
    Platform,
    PlatformFailed,
    Supervisor,
    ensure_broker,
    port_in_use,
    secret_with_source,
)

REFUSED = 2


def say(text: str) -> None:
    print(text, flush=True)


def refuse_if_taken(platform: Platform, data_dir: Path):
    """The port and the data directory of this platform, or SystemExit(2) saying who has them.
    Returns the open lock file: hold it as long as the platform runs."""
    if port_in_use(platform.host, platform.port):
        healthy, _ = platform.health()
        who = (
            "a Xiaopu gateway answers there: another `make run` is running"
            if healthy or platform_answers(platform)
            else "another program listens there"
        )
        say(
            f"refusing to start: port {platform.port} on {platform.host} is already in use "
            f"({who}).\nStop it first, or start this one on another port: "
            f"GATEWAY_PORT={platform.port + 1} make run"
        )
        raise SystemExit(REFUSED)
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = open(data_dir / "platform.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        owner = lock.read().strip() or "?"
        lock.close()
        say(
            f"refusing to start: another platform (supervisor pid {owner}) already runs on the "
            f"data directory {data_dir}.\nStop it first, or give this one its own "
            "XIAOPU_DATA_DIR (and its own databases and AMQP vhost)."
        )
        raise SystemExit(REFUSED) from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def payment_env(var: Path, environ) -> dict[str, str]:
    """The payment provider settings of this platform. No secret is built in: the sandbox
    provider's signing secret comes from the environment or is generated into
    var/payment.secret (like the admin token). On a developer's machine (not production) the
    sandbox provider is configured explicitly, so its ``/pay`` shortcut exists (``make demo``
    uses it); production must bring its own provider (shared/config.py refuses the sandbox)."""
    env = {
        "PAYMENT_SANDBOX_SECRET": secret_with_source(
            var / "payment.secret", "PAYMENT_SANDBOX_SECRET"
        )[0]
    }
    if str(environ.get("XIAOPU_ENV", "")).strip().lower() != "production":
        env["PAYMENT_PROVIDER"] = environ.get("PAYMENT_PROVIDER") or "sandbox"
        env["PAYMENT_SANDBOX_ENABLED"] = environ.get("PAYMENT_SANDBOX_ENABLED") or "1"
    return env


def platform_answers(platform: Platform) -> bool:
    _, body = platform.health()
    return isinstance(body, dict) and "services" in body


def main() -> int:
    stop, hurry = threading.Event(), threading.Event()

    def on_signal(signum, frame):
        if stop.is_set():
            hurry.set()  # a second Ctrl-C: no grace period
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    var = ROOT / "var"
    data_dir = ROOT / os.environ.get("XIAOPU_DATA_DIR", "var/data")
    probe = Platform()
    lock = refuse_if_taken(probe, data_dir)
    amqp_uri = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
    ensure_broker(amqp_uri)
    admin, admin_source = secret_with_source(var / "admin.token", "XIAOPU_ADMIN_TOKEN")
    secret, secret_source = secret_with_source(var / "secret.key", "XIAOPU_SECRET_KEY")
    # `make run` is the development platform: sandbox adapters in test mode (the one-time codes
    # are read from /api/v1/admin/sandbox/messages, the clock can be moved). XIAOPU_TEST_MODE=0
    # turns it off; XIAOPU_ENV=production refuses test mode altogether.
    test_mode = os.environ.get("XIAOPU_TEST_MODE", "1")
    salt, _ = secret_with_source(var / "fingerprint.salt", "XIAOPU_FINGERPRINT_SALT")
    platform = Platform(
        {
            "XIAOPU_ADMIN_TOKEN": admin,
            "XIAOPU_SECRET_KEY": secret,
            "XIAOPU_TEST_MODE": test_mode,
            "XIAOPU_FINGERPRINT_SALT": salt,
            **payment_env(var, os.environ),
        },
        die_with_parent=True,
        metrics=True,
    )
    timeout = float(os.environ.get("XIAOPU_START_TIMEOUT", 120))
    code = 0
    try:
        say("migrating catalog, shop, share, orders, payouts, identity and messages ...")
        platform.migrate(stop)
        if stop.is_set():
            return 0
        say(
            "starting catalog, shop, share, orders, payouts, identity, messages and the gateway ..."
        )
        platform.start_all()
        supervisor = Supervisor(platform)
        platform.wait_healthy(timeout, tick=supervisor.check, stop=stop)
        say(
            f"\nXiaopu is up: gateway on {platform.base_url}  (health: "
            f"{platform.base_url}/api/v1/health, API: {platform.base_url}/api/v1/openapi.json)\n"
            f"admin token: {admin}  ({admin_source})\n"
            f"token signing key: {secret_source}\n"
            f"test mode: {'on (sandbox adapters, test clock)' if test_mode == '1' else 'off'}\n"
            f"payment sandbox secret: {var / 'payment.secret'} (or PAYMENT_SANDBOX_SECRET)\n"
            f"processes: {', '.join(f'{n} {p}' for n, p in platform.pids().items())}\n"
            f"metrics: {platform.base_url}/metrics (gateway); services on 127.0.0.1: "
            f"{', '.join(f'{n} :{p}' for n, p in platform.metrics_ports.items())}\n"
            "A process that exits is restarted. Ctrl-C stops everything."
        )
        while not stop.wait(0.5):
            supervisor.check()
    except PlatformFailed as exc:
        if not stop.is_set():
            say(f"Xiaopu failed: {exc}")
            code = 1
    finally:
        say("\nstopping Xiaopu ...")
        platform.stop(hurry)
        say("stopped: every process of the platform has exited")
        lock.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
