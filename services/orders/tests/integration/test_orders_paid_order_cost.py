"""What one paid order costs on the synchronous path (checkout, then pay), counted in-process
with the real orders and the real catalog: the RPCs every service received and the SQL
statements and commits every RPC worker ran (event handlers run after the answer). Counts,
not times (speed lives in benchmarks/)."""

from __future__ import annotations

import threading
from collections import Counter

import eventlet
import orders_support as sup
import pytest
import requests
from nameko.containers import ServiceContainer
from nameko.rpc import Rpc
from sqlalchemy import event
from sqlalchemy.engine import Engine
from test_orders_with_real_catalog import ADDRESS, make_supplier_with_product

from shared.httprpc import HttpRpc
from shared.pg import FoldedBeginDialect

pytestmark = [pytest.mark.integration, pytest.mark.postgres_only]

# the outbox relay publishes in the background (it is not on the request's path)
BACKGROUND = ("from outbox", "update outbox")


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rpcs: Counter = Counter()  # calls received, over RabbitMQ or the HTTP door
        self.over_http: Counter = Counter()
        self.sql: list[str] = []
        self.commits = 0
        self.round_trips: list[str] = []  # what went to PostgreSQL, COMMITs sent alone too
        self.on = False

        self.rpc_workers: set = set()  # green threads running an RPC (the synchronous path)

    def synchronous(self) -> bool:
        return self.on and eventlet.getcurrent() in self.rpc_workers

    def statement(self, conn, cursor, statement, params, context, executemany) -> None:
        text = " ".join(statement.split()).lower()
        if self.synchronous() and not any(b in text for b in BACKGROUND):
            with self.lock:
                self.sql.append(text[:120])

    def commit(self, conn) -> None:
        if self.synchronous():
            with self.lock:
                self.commits += 1


@pytest.fixture
def tally(monkeypatch):
    t = Tally()
    original = Rpc.handle_message

    def counted(self, body, message):
        if t.on:
            with t.lock:
                t.rpcs[f"{self.container.service_name}.{self.method_name}"] += 1
        return original(self, body, message)

    monkeypatch.setattr(Rpc, "handle_message", counted)
    original_http = HttpRpc.handle_request

    def counted_http(self, request):
        if t.on:
            with t.lock:
                name = f"{self.container.service_name}.{self.method_name}"
                t.rpcs[name] += 1
                t.over_http[name] += 1
        return original_http(self, request)

    monkeypatch.setattr(HttpRpc, "handle_request", counted_http)
    run_worker = ServiceContainer._run_worker

    def marked(self, worker_ctx, handle_result):
        # only what RPC workers run is on the request's path; event handlers (the catalog
        # committing stock from order_paid, read-model updates) run after the answer
        rpc_worker = isinstance(worker_ctx.entrypoint, (Rpc, HttpRpc))
        if rpc_worker:
            t.rpc_workers.add(eventlet.getcurrent())
        try:
            return run_worker(self, worker_ctx, handle_result)
        finally:
            t.rpc_workers.discard(eventlet.getcurrent())

    monkeypatch.setattr(ServiceContainer, "_run_worker", marked)
    run, end = FoldedBeginDialect._run, FoldedBeginDialect._end

    def sent(self, cursor, statement, *parameters):
        try:
            return run(self, cursor, statement, *parameters)
        finally:
            if t.synchronous():
                with t.lock:
                    ended = cursor.connection.ended  # this statement carried the COMMIT
                    t.round_trips.append(statement[:40] + (" ;COMMIT" if ended else ""))

    def ended(conn, command):
        if t.synchronous() and conn.open:  # a COMMIT or ROLLBACK of its own goes out
            with t.lock:
                t.round_trips.append(command)
        return end(conn, command)

    monkeypatch.setattr(FoldedBeginDialect, "_run", sent)
    monkeypatch.setattr(FoldedBeginDialect, "_end", staticmethod(ended))
    event.listen(Engine, "before_cursor_execute", t.statement)
    event.listen(Engine, "commit", t.commit)
    yield t
    event.remove(Engine, "before_cursor_execute", t.statement)
    event.remove(Engine, "commit", t.commit)


def units_sold(env, product_id):
    return requests.get(f"{env.url}/api/v1/products/{product_id}", timeout=15).json()["units_sold"]


def test_a_paid_order_costs_two_rpcs_and_four_statements(env_real_catalog, tally):
    env = env_real_catalog
    _, pid = make_supplier_with_product(env, stock=50)
    # one warm-up round (first-use costs: prepared caches, lazily created rows)
    first = env.post(
        "/api/v1/orders",
        role="member",
        sub=61,
        json={"items": [{"product_id": pid, "quantity": 1}], "address": ADDRESS},
    ).json()["orders"][0]
    assert env.post(f"/api/v1/orders/{first['id']}/pay", role="member", sub=61).status_code == 200
    sup.wait_for(lambda: len(sup.events("order_paid")) == 1)
    sup.wait_for(lambda: units_sold(env, pid) == 1)  # the catalog committed it (async)

    tally.on = True
    r = env.post(
        "/api/v1/orders",
        role="member",
        sub=61,
        json={"items": [{"product_id": pid, "quantity": 1}], "address": ADDRESS},
    )
    assert r.status_code == 201, r.text
    paid = env.post(f"/api/v1/orders/{r.json()['orders'][0]['id']}/pay", role="member", sub=61)
    tally.on = False
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    report = "\n".join(
        [f"rpcs {sum(tally.rpcs.values())}: {dict(tally.rpcs)}"]
        + [f"sql {len(tally.sql)}, commits {tally.commits}"]
        + [f"  {s}" for s in tally.sql]
        + [f"round trips {len(tally.round_trips)}"]
        + [f"  {s}" for s in tally.round_trips]
    )
    print(report)
    # the gateway's two calls, nothing else: no get_products (orders' read model prices), no
    # reservation (the warm-up's grant left units in orders' pool), no commit_stock (the
    # catalog records the sale from order_paid)
    assert dict(tally.rpcs) == {"orders.checkout": 1, "orders.pay": 1}, report
    # both through orders' HTTP door (shared/httprpc.py): no broker hop on the money path
    assert dict(tally.over_http) == {"orders.checkout": 1, "orders.pay": 1}, report
    # before issue 19: 29 statements in 6 committed transactions; the goal: <= 12. Now the
    # checkout's read-and-take and its write (2; 3 while the read ran before the transaction)
    # and the payment's UPDATE and INSERT (2), one commit each (before the payment wrote its
    # idempotency key and outbox row in statements of their own: 8 statements)
    assert len(tally.sql) <= 4 and tally.commits <= 2, report
    # and each COMMIT travels with its transaction's last statement (shared.pg): 4 round trips
    # to PostgreSQL in all, none of them a COMMIT of its own (7, then 5 before)
    assert len(tally.round_trips) == 4, report
    assert "COMMIT" not in tally.round_trips, report
    assert sum(s.endswith(";COMMIT") for s in tally.round_trips) == 2, report
