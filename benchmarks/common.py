"""What every benchmark shares: a platform on PostgreSQL, a load generator, and the floors.

A benchmark module ``benchmarks/bench_<name>.py`` defines ``run(ctx) -> list[dict]``; each dict
is one figure::

    {"name": "browse through the gateway", "value": 812.0, "unit": "req/s",
     "p50_ms": 11.2, "p99_ms": 40.1, "floor_name": "gateway→RPC echo", "floor_value": 1500.0,
     "ratio": 0.54, "goal": "≥ 0.5× echo"}

``ctx`` (``BenchContext``) gives:
  ``ctx.url``            the gateway's base URL (platform started as separate processes, PostgreSQL)
  ``ctx.admin_headers``  {"Authorization": "Bearer <admin token>"}
  ``ctx.db_urls``        {"catalog": "postgresql+psycopg2://...", ...} each service's database
  ``ctx.amqp_uri``       the broker vhost the platform runs on
  ``ctx.vhost``          that vhost's name (the management API's counters are per vhost)
  ``ctx.platform``       the launcher's ``Platform`` (``pids()``; ``start_service(s, key=...)``
                         for a second instance, ``stop_service(key)`` to remove it again)
  ``ctx.load(fn, concurrency=20, duration=5.0)``  call ``fn(session)`` (a requests.Session, one
                         per worker thread) as fast as possible; returns {"rps", "p50_ms",
                         "p99_ms", "count", "errors"}. ``fn`` raises or returns False on error.
  ``ctx.echo_floor(concurrency=20, duration=5.0)``  the same load on GET /api/v1/echo (a bare
                         gateway → RPC round trip), cached per concurrency for this run.
  ``ctx.figure(name, measured, floor, unit="req/s", goal=None)``  builds a figure dict from two
                         ``load`` results (ratio = measured rps / floor rps).
Run one benchmark alone: ``python benchmarks/run_all.py --only catalog``.
"""

from __future__ import annotations

import os
import secrets
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1)))))
    return ordered[k]


def load(
    fn: Callable[[requests.Session], object],
    concurrency: int = 20,
    duration: float = 5.0,
    warmup: float = 0.5,
) -> dict:
    """Closed-loop load: ``concurrency`` threads each calling ``fn`` back to back."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = [0.0]
    start_evt = threading.Event()

    def worker():
        session = requests.Session()
        mine, errs = [], 0
        start_evt.wait()
        warm_until = time.perf_counter() + warmup
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at[0]:
                break
            try:
                ok = fn(session)
            except Exception:
                ok = False
            t1 = time.perf_counter()
            if ok is False:
                errs += 1
            elif t0 >= warm_until:
                mine.append((t1 - t0) * 1000)
        with lock:
            latencies.extend(mine)
            errors[0] += errs

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    began = time.perf_counter()
    stop_at[0] = began + warmup + duration
    start_evt.set()
    for t in threads:
        t.join()
    return {
        "rps": len(latencies) / duration,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "count": len(latencies),
        "errors": errors[0],
    }


def timed(fn: Callable[[], object], repeat: int = 50) -> dict:
    """Latency of a single-threaded callable: p50/p99 in ms over ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return {
        "p50_ms": percentile(samples, 50),
        "p99_ms": percentile(samples, 99),
        "mean_ms": statistics.fmean(samples),
        "count": repeat,
    }


class BenchContext:
    def __init__(
        self,
        url: str,
        admin_token: str,
        db_urls: dict,
        amqp_uri: str,
        platform=None,
        vhost: str | None = None,
    ):
        self.url = url
        self.admin_headers = {"Authorization": f"Bearer {admin_token}"}
        self.db_urls = db_urls
        self.amqp_uri = amqp_uri
        self.platform = platform  # the scripts.launcher.Platform behind it
        self.vhost = vhost if vhost is not None else amqp_uri.rsplit("/", 1)[-1]
        self._echo: dict[tuple, dict] = {}

    def reset_floors(self) -> None:
        self._echo.clear()

    def load(self, fn, concurrency: int = 20, duration: float = 5.0) -> dict:
        return load(fn, concurrency, duration)

    def echo_floor(self, concurrency: int = 20, duration: float = 5.0) -> dict:
        key = (concurrency, duration)
        if key not in self._echo:
            url = f"{self.url}/api/v1/echo"
            self._echo[key] = load(
                lambda s: s.get(url, timeout=10).status_code == 200, concurrency, duration
            )
        return self._echo[key]

    @staticmethod
    def figure(
        name: str,
        measured: dict,
        floor: dict,
        unit: str = "req/s",
        floor_name: str = "gateway→RPC echo",
        goal: str | None = None,
        value_key: str = "rps",
        floor_key: str = "rps",
    ) -> dict:
        value, floor_value = measured[value_key], floor[floor_key]
        out = {
            "name": name,
            "value": round(value, 2),
            "unit": unit,
            "p50_ms": round(measured.get("p50_ms", 0.0), 2),
            "p99_ms": round(measured.get("p99_ms", 0.0), 2),
            "floor_name": floor_name,
            "floor_value": round(floor_value, 2),
            "ratio": round(value / floor_value, 3) if floor_value else None,
        }
        if goal:
            out["goal"] = goal
        if measured.get("errors"):
            out["errors"] = measured["errors"]
        return out


@contextmanager
def platform_on_postgres(
    log_dir: Path | None = None, env_overrides: dict | None = None, start: bool = True
):
    """Start the whole platform (separate processes) on fresh PostgreSQL databases and a fresh
    RabbitMQ vhost; tear everything down afterwards. ``env_overrides``: more environment for
    every process (a fault test's retry cap, pool sizes). ``start=False``: the databases, vhost
    and ``ctx.platform`` (scripts.launcher.Platform) are ready but nothing runs yet — the caller
    starts the processes it wants (the two-instance test); all of them are stopped afterwards."""
    import psycopg2

    from scripts.launcher import SERVICES, Platform, free_port

    tag = secrets.token_hex(3)
    dsn = os.environ.get("XIAOPU_TEST_PG_DSN", "dbname=postgres user=postgres host=127.0.0.1")
    pg_base = os.environ.get("XIAOPU_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")
    mgmt = os.environ.get("RABBIT_MANAGEMENT_URL", "http://127.0.0.1:15672")
    vhost = f"xiaopu_bench_{tag}"
    auth = ("guest", "guest")
    requests.put(f"{mgmt}/api/vhosts/{vhost}", auth=auth, timeout=10).raise_for_status()
    requests.put(
        f"{mgmt}/api/permissions/{vhost}/guest",
        auth=auth,
        timeout=10,
        json={"configure": ".*", "write": ".*", "read": ".*"},
    ).raise_for_status()
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    names = {s: f"xb_{s}_{tag}" for s in SERVICES}
    with admin.cursor() as cur:
        for name in names.values():
            cur.execute(f'CREATE DATABASE "{name}"')
    port = free_port()
    admin_token = secrets.token_urlsafe(16)
    db_urls = {s: f"{pg_base}/{n}" for s, n in names.items()}
    amqp_uri = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    env = {f"{s.upper()}_DATABASE_URL": u for s, u in db_urls.items()}
    env.update(
        {
            "AMQP_URI": amqp_uri,
            "GATEWAY_PORT": str(port),
            "XIAOPU_ADMIN_TOKEN": admin_token,
            "XIAOPU_SECRET_KEY": secrets.token_urlsafe(16),
            "PAYMENT_SANDBOX_SECRET": os.environ.get("PAYMENT_SANDBOX_SECRET")
            or secrets.token_urlsafe(24),
            "XIAOPU_TEST_MODE": "1",
            "XIAOPU_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "LOG_LEVEL": "WARNING",
            "XIAOPU_DATA_DIR": str(ROOT / "var" / f"bench-{tag}"),
            # every load comes from 127.0.0.1: limits far above it, so the numbers measure
            # the work (with the Redis round trip of the rate limit), not 429s
            "XIAOPU_RATE_LIMIT_PREFIX": f"xprl-bench-{tag}-{secrets.token_hex(4)}",
            **{
                f"XIAOPU_RATE_{group}": "address_burst=100000000,address_per_minute=100000000,"
                "global_burst=100000000,global_per_minute=100000000"
                for group in ("SHOP_LOOKUP", "SHARE_RESOLVE", "LANDING", "LOOKUP", "SIGNUP")
            },
        }
    )
    env.update(env_overrides or {})
    platform = Platform(
        env,
        log_dir=log_dir or ROOT / "var" / f"bench-{tag}" / "logs",
        quiet=True,
        metrics=True,  # each service's /metrics: SQL statements per entrypoint (shared.metrics)
    )
    try:
        if start:
            platform.start()
        yield BenchContext(platform.base_url, admin_token, db_urls, amqp_uri, platform, vhost)
    finally:
        platform.stop()
        with admin.cursor() as cur:
            for name in names.values():
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        requests.delete(f"{mgmt}/api/vhosts/{vhost}", auth=auth, timeout=10)


def scratch_database(prefix: str) -> tuple[str, Callable[[], None]]:
    """A fresh PostgreSQL database of its own (``xb_<prefix>_…``) for a benchmark that must not
    share the platform's (timers, relays): its URL, and the function that drops it."""
    import psycopg2

    dsn = os.environ.get("XIAOPU_TEST_PG_DSN", "dbname=postgres user=postgres host=127.0.0.1")
    base = os.environ.get("XIAOPU_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")
    name = f"xb_{prefix}_{secrets.token_hex(3)}"
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return f"{base}/{name}", drop
