"""One effect per request, whatever fails (issue 12): every service its own process on a RabbitMQ
vhost and PostgreSQL databases of this module's own, spoken to over HTTP, with faults injected.

(a) orders paused (SIGSTOP) past the gateway's deadline during a refund request and during a
    payment: the client sees 503; after SIGCONT the effect happened at most once, and the retry
    with the same Idempotency-Key returns that single outcome.
(b) two orders instances, one SIGKILLed with checkouts in flight: every client key ends with one
    checkout, no order the clients were not told about holds stock, stock is conserved.
(c) the same Idempotency-Key through two gateways at once, for a checkout, a refund request, a
    supplier registration and a payout run: one effect each.

Each test ends with the operator's invariant checker (``python -m shared.invariants``) run
against this module's databases and vhost: exit 0, every invariant holds.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
import pytest
import requests

from scripts.launcher import SERVICES, Platform, free_port
from shared.testing import wait_drained, wait_for
from tests.e2e import story

pytestmark = pytest.mark.postgres_only

RPC_TIMEOUT = 3  # seconds: the gateway's deadline (checkout and payment get twice that)
PG_DSN = os.environ.get("XIAOPU_TEST_PG_DSN", "dbname=postgres user=postgres host=127.0.0.1")
PG_URL = os.environ.get("XIAOPU_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


class Api:
    """A tiny client bound to one gateway."""

    def __init__(self, url: str, admin: str):
        self.url, self.admin = url, admin
        self.session = requests.Session()

    def call(self, method: str, path: str, token: str | None = None, **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        timeout = kwargs.pop("timeout", 30)
        return self.session.request(
            method, self.url + path, headers=headers, timeout=timeout, **kwargs
        )

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, **kw):
        return self.call("POST", path, **kw)

    def put(self, path, **kw):
        return self.call("PUT", path, **kw)

    def fresh(self) -> Api:
        """Another client of the same gateway (requests.Session is not for threads)."""
        return Api(self.url, self.admin)


class Faults:
    """The platform of this module: one gateway and one orders instance more than usual."""

    def __init__(self, tmp: Path):
        self.tag = secrets.token_hex(3)
        self.vhost = f"xiaopu_faults_{self.tag}"
        self.dbs = {s: f"xf_{s}_{self.tag}" for s in SERVICES}
        self.admin = secrets.token_urlsafe(16)
        self.logs = tmp
        port = free_port()
        self.env = {f"{s.upper()}_DATABASE_URL": f"{PG_URL}/{n}" for s, n in self.dbs.items()}
        self.env.update(
            {
                "AMQP_URI": f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}",
                "GATEWAY_PORT": str(port),
                "XIAOPU_ADMIN_TOKEN": self.admin,
                "XIAOPU_SECRET_KEY": secrets.token_urlsafe(16),
                "XIAOPU_TEST_MODE": "1",
                "XIAOPU_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "XIAOPU_RPC_TIMEOUT": str(RPC_TIMEOUT),
                "LOG_LEVEL": "WARNING",
                "XIAOPU_DATA_DIR": str(tmp / "data"),
                # pools open lazily: only the catalog ever needs many at once — test (b) holds 16
                # stock reservations waiting on one locked product row, each on its connection
                "DB_POOL_SIZE": "3",
                "DB_POOL_OVERFLOW": "17",
            }
        )
        self.platform = Platform(self.env, log_dir=tmp, quiet=True, grace=5)
        self.env.update(self.platform.orders_door())  # further processes: the same door
        self.extra: list[Platform] = []

    def start(self) -> None:
        rabbitmqctl("add_vhost", self.vhost)
        rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        with self.pg() as conn, conn.cursor() as cur:
            for name in self.dbs.values():
                cur.execute(f'CREATE DATABASE "{name}"')
        self.platform.start(timeout=120)
        self.api = Api(self.platform.base_url, self.admin)
        port = free_port()
        self.gateway2 = self.spawn("gateway", GATEWAY_PORT=str(port))
        self.api2 = Api(f"http://127.0.0.1:{port}", self.admin)
        wait_for(lambda: _answers(self.api2.url), timeout=60)

    def spawn(self, service: str, **env: str) -> Platform:
        """One more process of ``service`` (its own log file)."""
        logs = self.logs / f"{service}-{len(self.extra) + 2}"
        extra = Platform({**self.env, **env}, log_dir=logs, quiet=True, grace=5)
        extra.start_service(service)
        self.extra.append(extra)
        return extra

    def stop(self) -> None:
        for proc in [
            *self.platform.procs.values(),
            *(p for e in self.extra for p in e.procs.values()),
        ]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGCONT)  # a paused process cannot stop
        for extra in self.extra:
            extra.stop()
        self.platform.stop()
        with self.pg() as conn, conn.cursor() as cur:
            for name in self.dbs.values():
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.vhost], timeout=60, check=False)

    @staticmethod
    def pg():
        conn = psycopg2.connect(PG_DSN)
        conn.autocommit = True
        return _Closing(conn)

    def query(self, service: str, sql: str, *args) -> list[tuple]:
        conn = psycopg2.connect(f"{PG_DSN} dbname={self.dbs[service]}")
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall()
        finally:
            conn.close()

    def drained(self) -> None:
        """Nothing left in flight: every queue empty, every outbox published."""

        def backlog() -> int:
            return sum(
                self.query(s, "SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0]
                for s in SERVICES
            )

        # the reply queue of a killed instance keeps the answers nobody waits for any more
        wait_drained(
            self.vhost,
            backlogs=backlog,
            timeout=60,
            ignore=lambda q: q.endswith((".dead", ".retry")) or q.startswith("rpc.reply-"),
        )

    def invariants_hold(self) -> None:
        """Once nothing is in flight, the operator's checker (``python -m shared.invariants``,
        with the environment the services run with) passes: exit 0; its table if not."""
        self.drained()
        done = self.platform.check_invariants(timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "all invariants hold" in done.stdout


class _Closing:
    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        return self.conn

    def __exit__(self, *exc):
        self.conn.close()


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/api/v1/health", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    platform = Faults(tmp_path_factory.mktemp("faults"))
    try:
        platform.start()
        yield platform
    finally:
        platform.stop()


# --- helpers ---------------------------------------------------------------------------------
def world(api: Api, stock: int = 100) -> tuple[dict, dict, dict]:
    """A supplier with one product, and a buyer."""
    sup = story.supplier(api)
    prod = story.product(api, sup, stock=stock)
    return sup, prod, story.member(api)


def checkout_body(prod: dict, quantity: int = 1) -> dict:
    return {"items": [{"product_id": prod["id"], "quantity": quantity}], "address": story.ADDRESS}


def paid_order(api: Api) -> tuple[dict, dict, dict, dict]:
    sup, prod, buyer = world(api)
    order = story.checkout(api, buyer, [(prod, 1)])[0]
    assert (
        story.ok(api.post(f"/api/v1/orders/{order['id']}/pay", token=buyer["token"]))["status"]
        == "paid"
    )
    return sup, prod, buyer, order


def paused_mid_work(
    faults: Faults, order_id: int, request: Callable[[], requests.Response]
) -> requests.Response:
    """``request()`` caught by a pause of the orders process while its worker is inside the
    work: the test holds the order's row lock, so the worker waits in its transaction; orders
    is stopped (SIGSTOP), the lock released, and orders resumed (SIGCONT) only once the client
    has its answer — the gateway's deadline has passed, and the worker then goes on."""
    pid = faults.platform.procs["orders"].pid
    answer: list[requests.Response] = []
    lock = psycopg2.connect(f"{PG_DSN} dbname={faults.dbs['orders']}")
    try:
        with lock.cursor() as cur:
            cur.execute("SELECT id FROM orders WHERE id = %s FOR UPDATE", (order_id,))
            sender = threading.Thread(target=lambda: answer.append(request()))
            sender.start()
            wait_for(lambda: _waiting_for_a_lock(faults), timeout=10)  # the worker is inside
            os.kill(pid, signal.SIGSTOP)
        lock.commit()
    finally:
        lock.close()
    try:
        sender.join(60)
        assert answer, "the gateway never answered"
    finally:
        os.kill(pid, signal.SIGCONT)
    return answer[0]


def _waiting_for_a_lock(faults: Faults) -> bool:
    rows = faults.query(
        "orders",
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock'",
    )
    return rows[0][0] > 0


def stock_of(faults: Faults, product_id: int) -> dict[str, int]:
    """The product's units: ``free`` (the catalog's stock, orders' pool, and grants the
    catalog made whose answers orders has not applied yet), ``held`` (by unpaid orders: held
    reservations at the catalog, or taken from orders' pool) and what the catalog's
    reservations have sold or given back, by status."""
    free = faults.query("catalog", "SELECT stock FROM products WHERE id = %s", product_id)[0][0]
    granted = faults.query(
        "catalog",
        "SELECT grant_id, quantity FROM stock_grants WHERE product_id = %s AND status = 'granted'",
        product_id,
    )
    applied = {
        g
        for (g,) in faults.query(
            "orders",
            "SELECT grant_id FROM stock_grants WHERE product_id = %s AND state = 'applied'",
            product_id,
        )
    }
    pool = faults.query("orders", "SELECT units FROM stock_pool WHERE product_id = %s", product_id)
    reserved = faults.query(
        "orders",
        "SELECT coalesce(sum(i.quantity), 0) FROM order_items i JOIN orders o ON o.id = i.order_id"
        " WHERE i.product_id = %s AND o.stock_state = 'reserved'",
        product_id,
    )[0][0]
    rows = faults.query(
        "catalog",
        "SELECT r.status, coalesce(sum(l.quantity), 0) FROM reservation_lines l "
        "JOIN reservations r ON r.id = l.reservation_id WHERE l.product_id = %s GROUP BY r.status",
        product_id,
    )
    by_status = {status: int(q) for status, q in rows}
    held = by_status.pop("held", 0) + int(reserved)
    free += (pool[0][0] if pool else 0) + sum(q for g, q in granted if g not in applied)
    return {"free": int(free), **({"held": held} if held else {}), **by_status}


# --- (a) a paused orders service ---------------------------------------------------------------
def test_a_refund_request_answered_503_happened_at_most_once(faults):
    api = faults.api
    _, _, buyer, order = paid_order(api)
    path = f"/api/v1/orders/{order['id']}/refunds"
    body = {"amount_fen": 3_000, "reason": "少了一盒"}
    key = {"Idempotency-Key": f"refund-{secrets.token_hex(4)}"}

    def ask() -> requests.Response:
        return api.fresh().post(path, token=buyer["token"], json=body, headers=dict(key))

    first = paused_mid_work(faults, order["id"], ask)
    assert first.status_code == 503, first.text
    faults.drained()  # whatever orders had taken has run (or been refused) by now
    refunds = faults.query("orders", "SELECT id FROM refunds WHERE order_id = %s", order["id"])
    assert len(refunds) <= 1, refunds  # at most once

    retry = ask()
    assert retry.status_code == 201, retry.text
    again = ask()
    assert again.status_code == 201 and again.json()["id"] == retry.json()["id"]
    refunds = faults.query("orders", "SELECT id FROM refunds WHERE order_id = %s", order["id"])
    assert [r[0] for r in refunds] == [retry.json()["id"]]  # one refund, the one answered
    faults.invariants_hold()


def test_a_payment_answered_503_happened_at_most_once(faults):
    api = faults.api
    sup, prod, buyer = world(api)
    order = story.checkout(api, buyer, [(prod, 1)])[0]
    key = {"Idempotency-Key": f"pay-{secrets.token_hex(4)}"}

    def pay() -> requests.Response:
        return api.fresh().post(
            f"/api/v1/orders/{order['id']}/pay", token=buyer["token"], headers=dict(key)
        )

    first = paused_mid_work(faults, order["id"], pay)
    assert first.status_code == 503, first.text
    faults.drained()
    payments = faults.query(
        "orders", "SELECT payment_id, outcome FROM payments WHERE order_id = %s", order["id"]
    )
    assert len(payments) <= 1, payments

    retry = pay()
    assert retry.status_code == 200, retry.text
    assert retry.json()["status"] == "paid"
    assert pay().json() == retry.json()  # the same single outcome
    payments = faults.query(
        "orders", "SELECT payment_id, outcome FROM payments WHERE order_id = %s", order["id"]
    )
    assert [p[1] for p in payments] == ["applied"]  # paid once: no late payment to refund
    faults.drained()
    assert stock_of(faults, prod["id"]) == {"free": 99, "committed": 1}
    faults.invariants_hold()


# --- (b) an orders instance killed mid-request ---------------------------------------------------
def test_a_killed_orders_instance_leaves_no_ghost_and_no_duplicate(faults):
    api = faults.api
    _, prod, buyer = world(api, stock=200)
    second = faults.spawn("orders")
    wait_for(lambda: _orders_consumers(faults) >= 2, timeout=60)
    keys = [f"kill-{i}-{secrets.token_hex(3)}" for i in range(16)]

    def checkout(key: str) -> requests.Response:
        return api.fresh().post(
            "/api/v1/orders",
            token=buyer["token"],
            json=checkout_body(prod, 2),
            headers={"Idempotency-Key": key},
        )

    # The test holds the product's row at the catalog: every checkout finds orders' pool
    # empty, records the grant it asks, then waits in the catalog for it; one orders instance
    # dies there — the grants it asked are made by the catalog once the row is free, their
    # answers lost with it (asked again by the survivor or the timer, never lost).
    lock = psycopg2.connect(f"{PG_DSN} dbname={faults.dbs['catalog']}")
    try:
        with lock.cursor() as cur, ThreadPoolExecutor(len(keys)) as pool:
            cur.execute("SELECT id FROM products WHERE id = %s FOR UPDATE", (prod["id"],))
            futures = [pool.submit(checkout, k) for k in keys]
            wait_for(lambda: _grants_asked(faults) == len(keys), timeout=90)
            # checkout reaches orders over its HTTP door (shared/httprpc.py): both instances
            # listen on it, so the one about to be killed holds some of the waiting requests
            held = _door_connections(faults, second)
            assert held > 0, held
            second.stop_service("orders", sig=signal.SIGKILL, wait=5)
            # the stock is free again; the gateway sends the killed instance's requests again
            lock.commit()
            first_answers = dict(zip(keys, (f.result() for f in futures), strict=True))
    finally:
        lock.close()

    final: dict[str, requests.Response] = {}
    for key, resp in first_answers.items():  # a client retries whatever it was not told
        for _ in range(5):
            if resp.status_code < 500:
                break
            resp = checkout(key)
        final[key] = resp
    assert all(r.status_code == 201 for r in final.values()), {
        k: (r.status_code, r.text[:200]) for k, r in final.items() if r.status_code != 201
    }
    told = {k: [o["id"] for o in r.json()["orders"]] for k, r in final.items()}
    for key, resp in first_answers.items():  # an early answer agrees with the final one
        if resp.status_code == 201:
            assert [o["id"] for o in resp.json()["orders"]] == told[key]

    faults.drained()
    checkouts = faults.query(
        "orders",
        "SELECT key, count(*) FROM checkouts WHERE buyer_id = %s GROUP BY key",
        buyer["id"],
    )
    assert sorted(k for k, _ in checkouts) == sorted(keys)  # one checkout per key ...
    assert all(n == 1 for _, n in checkouts)
    orders = faults.query(
        "orders",
        "SELECT o.id, c.key, o.status FROM orders o JOIN checkouts c ON c.id = o.checkout_id "
        "WHERE o.buyer_id = %s",
        buyer["id"],
    )
    assert sorted(o[0] for o in orders) == sorted(i for ids in told.values() for i in ids)
    live = faults.query(
        "orders",
        "SELECT count(*) FROM orders WHERE buyer_id = %s AND status = 'created'",
        buyer["id"],
    )[0][0]
    assert live == len(keys)  # ... and no order nobody was told about still holds stock
    assert stock_of(faults, prod["id"]) == {"free": 200 - 2 * len(keys), "held": 2 * len(keys)}
    faults.invariants_hold()


def _door_connections(faults: Faults, instance: Platform) -> int:
    """Established connections to orders' HTTP door accepted by that instance's process."""
    port = faults.env["ORDERS_HTTP_RPC_ADDRESS"].rsplit(":", 1)[1]
    pid = instance.procs["orders"].pid
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(f"pid={pid}," in line for line in out.splitlines())


def _grants_asked(faults: Faults) -> int:
    return faults.query(
        "orders", "SELECT count(DISTINCT grant_id) FROM stock_grants WHERE state = 'asked'"
    )[0][0]


def _orders_consumers(faults: Faults) -> int:
    out = subprocess.run(
        [
            "rabbitmqctl",
            "list_queues",
            "-q",
            "--no-table-headers",
            "-p",
            faults.vhost,
            "name",
            "consumers",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "rpc-orders":
            return int(parts[1])
    return 0


# --- (c) one key, two gateways ------------------------------------------------------------------
def twice(fn: Callable[[Api], requests.Response], faults: Faults) -> list[requests.Response]:
    """``fn`` through both gateways at the same moment."""
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(fn, [faults.api.fresh(), faults.api2.fresh()]))


def test_one_key_through_two_gateways_is_one_effect(faults):
    api = faults.api
    name = f"双网关供应商{secrets.token_hex(3)}"
    supplier_body = {
        "name": name,
        "registered_capital_fen": 200_000_000,
        "general_taxpayer": True,
        "brand_authorization_levels": 1,
        "contact": {"phone": story.unique_phone("138"), "wechat": "two-gw", "email": "g@e.com"},
    }
    key = {"Idempotency-Key": f"sup-{secrets.token_hex(4)}"}
    answers = twice(
        lambda a: a.post("/api/v1/suppliers", json=supplier_body, headers=dict(key)), faults
    )
    assert [r.status_code for r in answers] == [201, 201], [r.text for r in answers]
    assert answers[0].json()["id"] == answers[1].json()["id"]
    assert (
        faults.query("catalog", "SELECT count(*) FROM suppliers WHERE name = %s", name)[0][0] == 1
    )

    _, prod, buyer = world(api)
    key = {"Idempotency-Key": f"co-{secrets.token_hex(4)}"}
    answers = twice(
        lambda a: a.post(
            "/api/v1/orders", token=buyer["token"], json=checkout_body(prod), headers=dict(key)
        ),
        faults,
    )
    assert [r.status_code for r in answers] == [201, 201], [r.text for r in answers]
    ids = [[o["id"] for o in r.json()["orders"]] for r in answers]
    assert ids[0] == ids[1]
    count = faults.query("orders", "SELECT count(*) FROM orders WHERE buyer_id = %s", buyer["id"])
    assert count[0][0] == 1
    order_id = ids[0][0]
    story.ok(api.post(f"/api/v1/orders/{order_id}/pay", token=buyer["token"]))

    key = {"Idempotency-Key": f"rf-{secrets.token_hex(4)}"}
    answers = twice(
        lambda a: a.post(
            f"/api/v1/orders/{order_id}/refunds",
            token=buyer["token"],
            json={"amount_fen": 1_000, "reason": "破损"},
            headers=dict(key),
        ),
        faults,
    )
    assert [r.status_code for r in answers] == [201, 201], [r.text for r in answers]
    assert answers[0].json()["id"] == answers[1].json()["id"]
    refunds = faults.query("orders", "SELECT count(*) FROM refunds WHERE order_id = %s", order_id)
    assert refunds[0][0] == 1

    runs_before = faults.query("payouts", "SELECT count(*) FROM payout_runs")[0][0]
    key = {"Idempotency-Key": f"run-{secrets.token_hex(4)}"}
    answers = twice(
        lambda a: a.post("/api/v1/admin/payouts/run", token=a.admin, json={}, headers=dict(key)),
        faults,
    )
    assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
    assert answers[0].json() == answers[1].json()
    assert faults.query("payouts", "SELECT count(*) FROM payout_runs")[0][0] == runs_before + 1
    faults.invariants_hold()
