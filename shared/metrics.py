"""Prometheus metrics (prometheus_client): what every process of the platform counts and measures.

Where they are served:

* the gateway answers ``GET /metrics`` on its own HTTP port (text exposition format; handled
  before routing, so it is not part of the OpenAPI document);
* every domain service process serves its own on ``METRICS_PORT`` (``METRICS_HOST``, 127.0.0.1;
  0 = off, the default; ``make run`` gives each process one and prints them). One scrape target
  per process is Prometheus' own model for several instances: no process aggregates another's
  numbers, a dead instance simply stops answering (``up == 0``), and the numbers of a process
  that restarts start again from zero like any counter. ``xiaopu_instance_info`` names the
  service and instance id (``shared.instance``) behind each target.

What is measured:

* ``xiaopu_http_requests_total{method,route,status}`` and
  ``xiaopu_http_request_duration_seconds{method,route}``: the gateway's requests per route
  template (``/api/v1/orders/<int:order_id>``, never the raw path) and status class (2xx…5xx);
* ``xiaopu_rpc_client_duration_seconds{caller,service,method,outcome}``: every RPC as its caller
  saw it (``shared.rpc.TimedCalls``), outcome ok / error (a domain error) / failed / timeout /
  unavailable;
* ``xiaopu_worker_duration_seconds{service,entrypoint,kind}``: each entrypoint's own time;
* ``xiaopu_db_statements_total{entrypoint,kind}``: SQL statements sent, per entrypoint (what
  ``benchmarks/bench_money_path.py`` reads for its statements per paid order);
* ``xiaopu_timer_last_run_timestamp_seconds{service,timer}`` and
  ``xiaopu_timer_runs_total{service,timer,outcome}``: every ``@timer`` of the service;
* read at scrape time from the service itself: ``xiaopu_outbox_backlog``,
  ``xiaopu_outbox_oldest_age_seconds``, ``xiaopu_events_retrying`` / ``xiaopu_events_parked``
  per consumer queue (``shared.queues``), ``xiaopu_db_pool_*`` (SQLAlchemy pool status).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import greenlet
from nameko.extensions import DependencyProvider
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from shared.instance import instance_id, setting

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "xiaopu_http_requests", "HTTP requests the gateway answered", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "xiaopu_http_request_duration_seconds",
    "Time the gateway took to answer, per route template",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
RPC_LATENCY = Histogram(
    "xiaopu_rpc_client_duration_seconds",
    "RPC round trips as the caller saw them",
    ["caller", "service", "method", "outcome"],
    buckets=LATENCY_BUCKETS,
)
WORKER_LATENCY = Histogram(
    "xiaopu_worker_duration_seconds",
    "Time each entrypoint's worker ran in this process",
    ["service", "entrypoint", "kind"],
    buckets=LATENCY_BUCKETS,
)
TIMER_LAST_RUN = Gauge(
    "xiaopu_timer_last_run_timestamp_seconds",
    "When each timer last finished a run (Unix time)",
    ["service", "timer"],
)
TIMER_RUNS = Counter("xiaopu_timer_runs", "Timer runs", ["service", "timer", "outcome"])
DB_STATEMENTS = Counter(
    "xiaopu_db_statements",
    "SQL statements this process sent (one per cursor execution: a batch sent as one is one), "
    "by the entrypoint whose worker sent it (kind rpc/event/timer/http; 'background' for the "
    "outbox relay and other managed threads)",
    ["entrypoint", "kind"],
)
INSTANCE_INFO = Gauge(
    "xiaopu_instance_info", "The service and instance id behind this target", ["service", "id"]
)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    """``route`` is the rule's template (bounded: one per route), never the raw path."""
    _child(HTTP_REQUESTS, method, route, status_class(status)).inc()
    _child(HTTP_LATENCY, method, route).observe(seconds)


def observe_rpc(caller: str, service: str, method: str, outcome: str, seconds: float) -> None:
    _child(RPC_LATENCY, caller, service, method, outcome).observe(seconds)


def exposition() -> tuple[bytes, str]:
    """(body, content type) of this process' metrics in the text exposition format."""
    return _generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# -- read at scrape time -------------------------------------------------------------------------
class Source:
    """What one running service container reports when scraped (its database and queues)."""

    def __init__(self, service: str, database: Any = None, amqp_uri: str = "", queues=()):
        self.service = service
        self.database = database  # shared.db.Database (the provider: engine + outbox table)
        self.amqp_uri = amqp_uri
        self.queues = list(queues)

    def outbox(self) -> tuple[int, float]:
        from sqlalchemy import func, select

        from shared import clock

        table = self.database.metadata.tables["outbox"]
        with self.database.engine.connect() as conn:
            count, oldest = conn.execute(
                select(func.count(), func.min(table.c.created_at)).where(
                    table.c.published_at.is_(None)
                )
            ).one()
        since = clock.as_utc(oldest)
        age = 0.0 if since is None else max(0.0, (clock.real_now() - since).total_seconds())
        return int(count), age

    def pool(self) -> dict[str, float]:
        pool = self.database.engine.pool
        out: dict[str, float] = {}
        for name, attr in (
            ("checked_out", "checkedout"),
            ("overflow", "overflow"),
            ("size", "size"),
            ("checked_in", "checkedin"),
        ):
            fn = getattr(pool, attr, None)
            if callable(fn):
                out[name] = float(fn())
        return out


class PlatformCollector:
    """The scrape-time gauges of every ``Source`` registered in this process (one per service
    container: one in production, several when tests run containers side by side)."""

    def __init__(self) -> None:
        self.sources: dict[int, Source] = {}
        self._lock = threading.Lock()

    def add(self, source: Source) -> None:
        with self._lock:
            self.sources[id(source)] = source

    def remove(self, source: Source) -> None:
        with self._lock:
            self.sources.pop(id(source), None)

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        svc, q = ["service"], ["service", "queue"]
        return {
            "backlog": GaugeMetricFamily(
                "xiaopu_outbox_backlog", "Outbox rows not yet published", labels=svc
            ),
            "oldest": GaugeMetricFamily(
                "xiaopu_outbox_oldest_age_seconds",
                "Age of the oldest unpublished outbox row (0: none waiting)",
                labels=svc,
            ),
            "retrying": GaugeMetricFamily(
                "xiaopu_events_retrying", "Events waiting in <queue>.retry", labels=q
            ),
            "parked": GaugeMetricFamily(
                "xiaopu_events_parked", "Events parked on <queue>.dead", labels=q
            ),
            "checked_out": GaugeMetricFamily(
                "xiaopu_db_pool_checked_out", "Database connections in use", labels=svc
            ),
            "overflow": GaugeMetricFamily(
                "xiaopu_db_pool_overflow",
                "Connections beyond the pool size (negative: room left in the pool)",
                labels=svc,
            ),
            "size": GaugeMetricFamily("xiaopu_db_pool_size", "Configured pool size", labels=svc),
            "checked_in": GaugeMetricFamily(
                "xiaopu_db_pool_checked_in", "Idle connections in the pool", labels=svc
            ),
            "errors": GaugeMetricFamily(
                "xiaopu_metrics_read_failed",
                "1 when a part of this scrape could not be read (database or broker)",
                labels=["service", "part"],
            ),
        }

    def describe(self) -> Iterator[Metric]:
        yield from self._families().values()

    def collect(self) -> Iterator[Metric]:
        fam = self._families()
        with self._lock:
            sources = list(self.sources.values())
        for src in sources:
            if src.database is None:
                continue
            name = src.service
            try:
                count, age = src.outbox()
                fam["backlog"].add_metric([name], count)
                fam["oldest"].add_metric([name], age)
                fam["errors"].add_metric([name, "database"], 0)
            except Exception as exc:  # a scrape reports what it can
                log.debug("metrics: outbox of %s unreadable: %s", name, exc)
                fam["errors"].add_metric([name, "database"], 1)
            for key, value in src.pool().items():
                fam[key].add_metric([name], value)
            if src.queues:
                try:
                    from shared.queues import retrying_and_parked

                    for queue, n in retrying_and_parked(src.amqp_uri, src.queues).items():
                        fam["retrying"].add_metric([name, queue], n["retrying"])
                        fam["parked"].add_metric([name, queue], n["parked"])
                    fam["errors"].add_metric([name, "broker"], 0)
                except Exception as exc:
                    log.debug("metrics: queues of %s unreadable: %s", name, exc)
                    fam["errors"].add_metric([name, "broker"], 1)
        yield from fam.values()


COLLECTOR = PlatformCollector()
REGISTRY.register(COLLECTOR)


# -- the nameko dependency -----------------------------------------------------------------------
def entrypoint_kind(entrypoint: Any) -> str:
    """``timer``, ``rpc``, ``event``, ``http`` or the class's own name, in lower case — worked
    out once per entrypoint class: this runs for every worker and every SQL statement (the
    import and the name scan were 2.5% of a service's CPU per RPC, by py-spy)."""
    cls = type(entrypoint)
    kind = _KINDS.get(cls)
    if kind is None:
        kind = _KINDS[cls] = _kind_of(cls)
    return kind


_KINDS: dict[type, str] = {}


def _kind_of(cls: type) -> str:
    from nameko.timer import Timer

    if issubclass(cls, Timer):
        return "timer"
    kind = cls.__name__.lower()
    for known in ("rpc", "event", "http"):
        if known in kind:
            return known
    return kind


class Metrics(DependencyProvider):
    """Declared once (``PlatformRpc.metrics``, ``GatewayService.metrics``): registers the
    service's scrape-time source, times every worker (timers: last run), and serves this
    process' metrics on ``METRICS_PORT`` when one is configured."""

    def setup(self) -> None:
        from shared.db import Database
        from shared.queues import consumer_queues

        config = self.container.config
        name = self.container.service_name
        database = next((d for d in self.container.dependencies if isinstance(d, Database)), None)
        queues = consumer_queues(self.container.service_cls, name) if database else []
        self.source = Source(name, database, config.get("AMQP_URI", ""), queues)
        self.port = int(setting(config, "METRICS_PORT", "0"))
        self.host = setting(config, "METRICS_HOST", "127.0.0.1")
        self._started: dict[int, float] = {}
        self._server_sock: Any = None
        INSTANCE_INFO.labels(name, instance_id(config)).set(1)

    def start(self) -> None:
        COLLECTOR.add(self.source)
        if self.port:
            import eventlet

            self._server_sock = eventlet.listen((self.host, self.port))
            self.container.spawn_managed_thread(self._serve)

    def _serve(self) -> None:
        from eventlet import wsgi

        def app(environ, start_response):
            body, content_type = exposition()
            start_response("200 OK", [("Content-Type", content_type)])
            return [body]

        wsgi.server(self._server_sock, app, log=log, log_output=False)

    def stop(self) -> None:
        COLLECTOR.remove(self.source)
        if self._server_sock is not None:
            self._server_sock.close()
            self._server_sock = None

    def kill(self) -> None:
        self.stop()

    def worker_setup(self, worker_ctx: Any) -> None:
        self._started[id(worker_ctx)] = time.perf_counter()
        entrypoint = worker_ctx.entrypoint
        _set_current((entrypoint.method_name, entrypoint_kind(entrypoint)))

    def worker_result(self, worker_ctx: Any, result: Any = None, exc_info: Any = None) -> None:
        started = self._started.pop(id(worker_ctx), None)
        if started is None:
            return
        seconds = time.perf_counter() - started
        entrypoint = worker_ctx.entrypoint
        kind = entrypoint_kind(entrypoint)
        service = self.container.service_name
        _child(WORKER_LATENCY, service, entrypoint.method_name, kind).observe(seconds)
        if kind == "timer":
            TIMER_LAST_RUN.labels(service, entrypoint.method_name).set(time.time())
            outcome = "ok" if exc_info is None else "failed"
            TIMER_RUNS.labels(service, entrypoint.method_name, outcome).inc()

    def worker_teardown(self, worker_ctx: Any) -> None:
        self._started.pop(id(worker_ctx), None)
        _set_current(None)


# The entrypoint whose worker runs in this (green) thread: set by ``Metrics.worker_setup``,
# which nameko calls in the worker's own greenthread; read when a statement is sent. Kept as
# an attribute of the current greenlet (under eventlet every thread is one, and a plain OS
# thread has its own main greenlet; ``threading.local`` is eventlet's green local there, whose
# every access looks the greenlet up: 2% of an RPC's CPU).
BACKGROUND = ("background", "background")
_ATTR = "_xp_entrypoint"


def _set_current(value: tuple[str, str] | None) -> None:
    setattr(greenlet.getcurrent(), _ATTR, value)


def _get_current() -> tuple[str, str] | None:
    return getattr(greenlet.getcurrent(), _ATTR, None)


@functools.cache
def _child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once per label set (prometheus_client takes a lock
    and builds a tuple on every ``labels`` call; these run per worker and per statement)."""
    return metric.labels(*labels)


def count_statement() -> None:
    """One SQL statement sent by this thread (``shared.db`` calls it from a
    ``before_cursor_execute`` listener on every engine)."""
    name, kind = _get_current() or BACKGROUND
    _child(DB_STATEMENTS, name, kind).inc()
