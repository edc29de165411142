"""Metrics and logs with the real gateway and services (shared/metrics.py, shared/logs.py).

The gateway's ``GET /metrics`` has the request, RPC, outbox, queue, pool and timer families and
they move with traffic; a service process serves its own on ``METRICS_PORT``; a request's id is on
the gateway's access line and on the lines of the service that worked for it, in text and JSON."""

from __future__ import annotations

import io
import json
import logging
import os
import secrets

import requests
from nameko.standalone.rpc import ServiceRpcProxy
from prometheus_client.parser import text_string_to_metric_families

from scripts.launcher import free_port
from shared.logs import make_handler
from shared.testing import wait_for


def scrape(url: str) -> dict[str, list]:
    """{family name: [(sample name, labels, value), ...]} of a metrics endpoint."""
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    return {
        fam.name: [(s.name, s.labels, s.value) for s in fam.samples]
        for fam in text_string_to_metric_families(resp.text)
    }


def value(families: dict, sample: str, **labels) -> float:
    """The sum of the samples named ``sample`` whose labels include ``labels`` (0 if none)."""
    return sum(
        v
        for fams in families.values()
        for name, lab, v in fams
        if name == sample and all(lab.get(k) == want for k, want in labels.items())
    )


def test_gateway_metrics_have_every_family_and_they_move(gateway, start_service):
    start_service("catalog", reservation_sweep_seconds=0.2)  # a timer that runs in the test
    start_service("orders")
    start_service("shop")  # consumes catalog's events: retry and dead-letter queues
    before = scrape(f"{gateway.url}/metrics")
    echo = dict(method="GET", route="/api/v1/echo")
    for _ in range(3):
        assert requests.get(f"{gateway.url}/api/v1/echo?q=hi", timeout=10).status_code == 200
    missing = requests.get(
        f"{gateway.url}/api/v1/orders/123", headers=gateway.headers("member", 1), timeout=10
    )
    assert missing.status_code == 404

    def moved():
        after = scrape(f"{gateway.url}/metrics")
        return (
            value(after, "xiaopu_timer_runs_total", service="catalog")
            > value(before, "xiaopu_timer_runs_total", service="catalog")
            and after
        )

    after = wait_for(moved, timeout=15)
    requests_ok = "xiaopu_http_requests_total"
    assert (
        value(after, requests_ok, status="2xx", **echo)
        - value(before, requests_ok, status="2xx", **echo)
        == 3
    )
    order = dict(method="GET", route="/api/v1/orders/<int:order_id>", status="4xx")
    assert value(after, requests_ok, **order) - value(before, requests_ok, **order) == 1
    latency = "xiaopu_http_request_duration_seconds_count"
    assert value(after, latency, **echo) - value(before, latency, **echo) == 3
    rpc = dict(caller="gateway", service="catalog", method="echo", outcome="ok")
    count = "xiaopu_rpc_client_duration_seconds_count"
    assert value(after, count, **rpc) - value(before, count, **rpc) == 3
    domain_error = dict(caller="gateway", service="orders", method="get_order", outcome="error")
    assert value(after, count, **domain_error) - value(before, count, **domain_error) == 1
    assert value(after, "xiaopu_rpc_client_duration_seconds_sum", **rpc) > value(
        before, "xiaopu_rpc_client_duration_seconds_sum", **rpc
    )
    # read from the services at scrape time
    for family in (
        "xiaopu_outbox_backlog",
        "xiaopu_outbox_oldest_age_seconds",
        "xiaopu_db_pool_checked_out",
        "xiaopu_db_pool_overflow",
        "xiaopu_db_pool_size",
    ):
        services = {lab["service"] for _, lab, _ in after[family]}
        assert {"catalog", "orders"} <= services, family
    # DB_POOL_SIZE (10) on PostgreSQL; a SQLite file keeps SQLAlchemy's own pool (5)
    pool_size = 5 if os.environ.get("XIAOPU_TEST_DB") == "sqlite" else 10
    assert value(after, "xiaopu_db_pool_size", service="orders") == pool_size
    queues = {lab["queue"] for _, lab, _ in after["xiaopu_events_parked"]}
    assert "evt-catalog-product_changed--shop.on_product_changed" in queues
    assert value(after, "xiaopu_events_parked") == 0
    assert value(after, "xiaopu_metrics_read_failed") == 0
    last = value(after, "xiaopu_timer_last_run_timestamp_seconds", service="catalog")
    assert last > value(before, "xiaopu_timer_last_run_timestamp_seconds", service="catalog")
    # not an API route
    paths = requests.get(f"{gateway.url}/api/v1/openapi.json", timeout=10).json()["paths"]
    assert "/metrics" not in paths


def test_a_service_serves_its_own_metrics_on_metrics_port(start_service):
    port = free_port()
    start_service("shop", METRICS_PORT=port, XIAOPU_INSTANCE_ID="shop-a")
    families = scrape(f"http://127.0.0.1:{port}/metrics")
    assert value(families, "xiaopu_instance_info", service="shop", id="shop-a") == 1
    assert value(families, "xiaopu_outbox_backlog", service="shop") == 0
    assert "xiaopu_db_pool_checked_out" in families


def test_a_service_counts_the_sql_statements_each_entrypoint_sends(start_service):
    """``xiaopu_db_statements_total{entrypoint,kind}``: what the money-path benchmark reads for
    its statements per paid order. An RPC's statements are its entrypoint's; the outbox relay's
    (a managed thread, no worker) are ``background``."""
    port = free_port()
    container = start_service("shop", METRICS_PORT=port)
    url = f"http://127.0.0.1:{port}/metrics"
    sample, health = "xiaopu_db_statements_total", {"entrypoint": "health", "kind": "rpc"}
    before = value(scrape(url), sample, **health)
    with ServiceRpcProxy("shop", container.config) as shop:
        assert shop.health()["db"] == "ok"  # reads the outbox backlog: at least two statements
    assert value(scrape(url), sample, **health) >= before + 2
    wait_for(lambda: value(scrape(url), sample, kind="background") > 0)  # the relay polls


def capture(fmt: str) -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = make_handler("test", instance="inst-7", fmt=fmt, stream=stream)
    root = logging.getLogger()
    root.addHandler(handler)
    return handler, stream


def request_logged(gateway, fmt: str) -> tuple[str, list[str]]:
    """Make a request with our own id, return it and the log lines captured meanwhile."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    handler, stream = capture(fmt)
    rid = "obs-" + secrets.token_hex(6)
    try:
        resp = requests.get(
            f"{gateway.url}/api/v1/orders/123",
            headers={**gateway.headers("member", 1), "X-Request-Id": rid},
            timeout=10,
        )
        assert resp.status_code == 404 and resp.headers["X-Request-Id"] == rid
        wait_for(lambda: "nameko.web.server" in stream.getvalue() and rid in stream.getvalue())
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return rid, stream.getvalue().splitlines()


def test_a_request_id_is_on_the_gateway_access_line_and_the_service_lines(gateway, start_service):
    start_service("orders")
    rid, lines = request_logged(gateway, "text")
    mine = [line for line in lines if f"[{rid}]" in line]
    access = [line for line in mine if "nameko.web.server" in line]
    assert access and "GET /api/v1/orders/123" in access[0] and " 404 " in access[0]
    # the orders worker's own line (its expected 404, logged as one INFO line)
    worker = [line for line in mine if "nameko.containers" in line and "404" in line]
    assert worker, lines
    assert all(" inst-7 " in line for line in mine)
    assert not any("[-]" in line and "/api/v1/orders/123" in line for line in lines)


def test_json_log_lines_parse_and_carry_the_request(gateway, start_service):
    start_service("orders")
    rid, lines = request_logged(gateway, "json")
    parsed = [json.loads(line) for line in lines if line.strip()]
    assert parsed
    for entry in parsed:
        assert {
            "time",
            "level",
            "service",
            "instance",
            "correlation_id",
            "logger",
            "message",
        } <= set(entry)
    mine = [e for e in parsed if e["correlation_id"] == rid]
    assert {e["logger"] for e in mine} >= {"nameko.web.server", "nameko.containers"}
    assert all(e["instance"] == "inst-7" and e["service"] == "test" for e in mine)
