"""Money-path benchmark: checkout → paid through the gateway, and what each paid order costs.

Load: 20 concurrent buyers (the seeding of ``bench_orders``: 40 products, 20 members), each
doing ``POST /api/v1/orders`` then ``POST /api/v1/orders/{id}/pay`` back to back for 5 s (after
a 0.5 s warm-up). Every paid order counts, the warm-up's too, since their work is in the CPU and
counter windows. Before the window every product is sold once (outside it), so orders' stock
pool holds a grant of each, as in a shop that has been selling.

Figures (each is one measurement window: the load, then until the platform is quiet again —
every outbox empty and the platform processes below 10% of a core — so the asynchronous work
the orders caused, accruals, stock commits, stats, is in the window too):

* paid orders/s, and its ratio to ``GET /api/v1/echo`` (gateway → one RPC) in the same run,
  and the CPU one echo costs (gateway + catalog + RabbitMQ): the price of one plumbing hop;
  beside it ``GET /api/v1/echo/local`` (the gateway alone): echo − local is what the RPC hop
  adds to a request; and ``GET /api/v1/echo/orders`` (gateway → orders' HTTP door, the way
  checkout and pay reach orders since the sixth session): its hop against the RPC hop;
* CPU-ms per paid order summed over every process, read from ``/proc/<pid>/stat``
  (utime + stime, before/after):
    - each platform process (the launcher's pids; each service leads its own process group, so
      every process of the group is counted, instances of one service summed under its name);
    - PostgreSQL: every ``postgres`` process plus the postmaster's cutime + cstime (the CPU of
      backends that exited, reaped by the postmaster). Backends come and go; a backend that
      lived across the window is counted once either way, so the sum is exact for the server
      as a whole — but the server is shared: other databases' work on it (other test runs) is
      in the figure too;
    - RabbitMQ: ``beam.smp`` (and its helpers), likewise shared by every vhost on the broker;
    - Redis (the gateway's rate limit), same caveat.
  The load generator (this process) is not counted; its CPU is reported beside.
  ``idle_cpu_ms_per_s`` (measured over the settle period just before the load, when nothing is
  asked of the platform) shows how much of the figure is timers and other tenants.
* per paid order: RPC requests (messages published into the ``rpc-<service>`` queues, from the
  RabbitMQ management API), broker publishes (the vhost's ``publish`` count: requests, replies,
  events, retries), publisher confirms the broker sent (the vhost's ``confirm`` count),
  PostgreSQL transactions (``pg_stat_database`` xact_commit + xact_rollback of this run's
  databases) and rows written (tup_inserted + tup_updated + tup_deleted), and SQL statements:
  every service process counts what it sends, per entrypoint (``xiaopu_db_statements_total``
  on its metrics port, ``shared.metrics``), so the figure is the synchronous path's —
  ``SYNC_PATH``: orders' checkout and pay, catalog's grant_stock (and reserve_stock, for
  orders placed before orders' stock pool) — with everything else
  (consumers, timers, the relay) beside it, by service. The management API and
  PostgreSQL publish their counters late (RabbitMQ every 5 s, PostgreSQL up to 10 s after a
  backend goes idle), so counters are read ``SETTLE`` seconds after the platform is quiet, and
  the background rate measured over the settle period before the load (timers) is subtracted.
* the plumbing alone: CPU per RPC-sized publish (this process + RabbitMQ), nameko's stock
  publisher against ours (``publish_cost``), alternating in the same run;
* scale-out: the same window with a second instance of orders, catalog, payouts and share
  (``Platform.start_service(s, key=f"{s}-2")``), and the ratio of CPU per paid order with two
  instances to one. The extra instances are stopped afterwards.
* after both windows, the invariant checker (``shared.invariants``: stock conserved and never
  negative — no oversell —, one accrual per paid order, balanced books, share stats, nothing
  parked): a failing invariant fails the benchmark.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time

import psycopg2
import requests

from benchmarks.bench_orders import ADDRESS, seed

CONCURRENCY = 20
DURATION = 5.0
SETTLE = 11.0  # > RabbitMQ's 5 s statistics interval and PostgreSQL's 10 s idle stats flush
SCALED = ("orders", "catalog", "payouts", "share")
TICK = os.sysconf("SC_CLK_TCK")
MGMT = os.environ.get("RABBIT_MANAGEMENT_URL", "http://127.0.0.1:15672")
AUTH = ("guest", "guest")
RABBIT_COMMS = ("beam.smp", "erl_child_setup", "epmd", "inet_gethost")


# -- CPU from /proc --------------------------------------------------------------------------
def _proc_table() -> list[tuple[int, str, int, int, int, int]]:
    """(pid, comm, ppid, pgrp, utime+stime, cutime+cstime) in clock ticks, every process."""
    rows = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                data = fh.read()
        except OSError:  # exited meanwhile
            continue
        comm = data[data.index("(") + 1 : data.rindex(")")]
        rest = data[data.rindex(")") + 2 :].split()
        # rest[0] is field 3 (state): ppid 4, pgrp 5, utime 14, stime 15, cutime 16, cstime 17
        rows.append(
            (
                int(name),
                comm,
                int(rest[1]),
                int(rest[2]),
                int(rest[11]) + int(rest[12]),
                int(rest[13]) + int(rest[14]),
            )
        )
    return rows


def cpu_snapshot(platform) -> dict[str, int]:
    """Clock ticks used so far, by component: each platform service (all its instances), and
    ``postgresql``, ``rabbitmq``, ``redis``."""
    groups = {pid: platform.kinds.get(key, key) for key, pid in platform.pids().items()}
    out: dict[str, int] = {}
    rows = _proc_table()
    pg_pids = {pid for pid, comm, *_ in rows if comm == "postgres"}
    for pid, comm, ppid, pgrp, own, children in rows:
        if pgrp in groups:
            name = groups[pgrp]
            out[name] = out.get(name, 0) + own + (children if pid == pgrp else 0)
        elif comm == "postgres":
            # the postmaster (parent not a postgres) has reaped every exited backend
            out["postgresql"] = out.get("postgresql", 0) + own
            if ppid not in pg_pids:
                out["postgresql"] += children
        elif comm in RABBIT_COMMS:
            out["rabbitmq"] = out.get("rabbitmq", 0) + own + (children if comm == "beam.smp" else 0)
        elif comm.startswith("redis-server"):
            out["redis"] = out.get("redis", 0) + own
    return out


def platform_ticks(platform) -> int:
    snap = cpu_snapshot(platform)
    return sum(v for k, v in snap.items() if k not in ("postgresql", "rabbitmq", "redis"))


def self_ticks() -> float:
    t = os.times()
    return (t.user + t.system) * TICK


# -- counters ----------------------------------------------------------------------------------
class Counters:
    """The broker's and PostgreSQL's counters for this run's vhost and databases."""

    def __init__(self, ctx):
        self.ctx = ctx
        dsn = os.environ.get("XIAOPU_TEST_PG_DSN", "dbname=postgres user=postgres host=127.0.0.1")
        self.admin = psycopg2.connect(dsn)
        self.admin.autocommit = True
        self.dbnames = [url.rsplit("/", 1)[-1] for url in ctx.db_urls.values()]
        self.service_dbs = {}
        for service, url in ctx.db_urls.items():
            conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
            conn.autocommit = True
            self.service_dbs[service] = conn

    def close(self) -> None:
        for conn in [self.admin, *self.service_dbs.values()]:
            conn.close()

    def outbox_backlog(self) -> int:
        total = 0
        for conn in self.service_dbs.values():
            with conn.cursor() as cur:
                try:
                    cur.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    total += cur.fetchone()[0]
                except psycopg2.Error:  # a database without an outbox
                    continue
        return total

    def read(self) -> dict[str, float]:
        vhost = requests.utils.quote(self.ctx.vhost, safe="")
        stats = requests.get(f"{MGMT}/api/vhosts/{vhost}", auth=AUTH, timeout=10).json()
        ms = stats.get("message_stats") or {}
        queues = requests.get(
            f"{MGMT}/api/queues/{vhost}",
            auth=AUTH,
            timeout=10,
            params={"columns": "name,message_stats.publish"},
        ).json()
        rpc = sum(
            (q.get("message_stats") or {}).get("publish", 0)
            for q in queues
            if q["name"].startswith("rpc-")
        )
        out = {
            "at": time.monotonic(),
            "publish": ms.get("publish", 0),
            "confirm": ms.get("confirm", 0),
            "rpc": rpc,
            "calls": calls_made(self.ctx),
        }
        with self.admin.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute(
                "SELECT coalesce(sum(xact_commit + xact_rollback), 0),"
                " coalesce(sum(tup_inserted + tup_updated + tup_deleted), 0)"
                " FROM pg_stat_database WHERE datname = ANY(%s)",
                (self.dbnames,),
            )
            xacts, writes = cur.fetchone()
            out["xacts"], out["row_writes"] = float(xacts), float(writes)
        sent = statements_sent(self.ctx.platform)
        out["statements"] = float(sum(sent.values()))
        out["statements_sync"] = float(
            sum(n for (svc, entrypoint, _), n in sent.items() if (svc, entrypoint) in SYNC_PATH)
        )
        for (svc, _, _), n in sent.items():
            out[f"statements:{svc}"] = out.get(f"statements:{svc}", 0.0) + n
        return out


# The entrypoints a paid order's two HTTP requests run, synchronously: the gateway's two RPCs
# and the one orders makes while answering the checkout.
SYNC_PATH = {
    ("orders", "checkout"),
    ("orders", "pay"),
    ("catalog", "reserve_stock"),  # orders placed before the pool (none in the benchmark)
    ("catalog", "grant_stock"),  # a checkout the pool cannot cover (one per ~20 units)
}
STATEMENTS = re.compile(
    r'^xiaopu_db_statements_total\{entrypoint="([^"]*)",kind="([^"]*)"\} ([0-9.e+]+)$', re.M
)


CALLS = re.compile(r"^xiaopu_rpc_client_duration_seconds_count\{([^}]*)\} ([0-9.e+]+)$", re.M)
LABEL = re.compile(r'(\w+)="([^"]*)"')


def calls_made(ctx) -> float:
    """Calls every caller of the platform made to a service so far — over RabbitMQ or over
    orders' HTTP door alike (``shared.rpc.TimedCalls`` times both into
    ``xiaopu_rpc_client_duration_seconds``): the gateway's (its ``/metrics``) and each
    service's (its metrics port)."""
    urls = [f"{ctx.url}/metrics"] + [
        f"http://127.0.0.1:{port}/metrics" for port in ctx.platform.metrics_ports.values()
    ]
    total = 0.0
    for url in urls:
        try:
            text = requests.get(url, timeout=5, headers=ctx.admin_headers).text
        except requests.RequestException:
            continue
        for labels, value in CALLS.findall(text):
            if dict(LABEL.findall(labels)).get("method") not in ("health", "echo"):
                total += float(value)
    return total


def statements_sent(platform) -> dict[tuple[str, str, str], float]:
    """SQL statements every service process has sent so far, by (service, entrypoint, kind),
    read from each process's Prometheus metrics (``xiaopu_db_statements_total``, counted by a
    ``before_cursor_execute`` listener in ``shared.db``: one per round trip; the gateway has no
    database). A process not answering (not started yet) counts 0."""
    out: dict[tuple[str, str, str], float] = {}
    for key, port in platform.metrics_ports.items():
        service = platform.kinds.get(key, key)
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except requests.RequestException:
            continue
        for entrypoint, kind, value in STATEMENTS.findall(text):
            k = (service, entrypoint, kind)
            out[k] = out.get(k, 0.0) + float(value)
    return out


def wait_quiet(ctx, counters: Counters, timeout: float = 60.0) -> None:
    """Until every outbox is empty and the platform's processes use < 10% of a core over 0.5 s
    (event consumers done, nothing left in flight)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if counters.outbox_backlog() == 0:
            before = platform_ticks(ctx.platform)
            time.sleep(0.5)
            if platform_ticks(ctx.platform) - before < 0.05 * TICK:
                return
        else:
            time.sleep(0.2)
    raise RuntimeError(f"the platform did not go quiet within {timeout:.0f}s")


# -- the load ----------------------------------------------------------------------------------
def buyer_round(ctx, world):
    base = ctx.url
    local = threading.local()
    counter = iter(range(10**9))
    lock = threading.Lock()
    paid = [0]

    def checkout_and_pay(session):
        if not hasattr(local, "headers"):
            with lock:
                n = next(counter)
            local.headers = world["buyers"][n % len(world["buyers"])]
            local.rnd = random.Random(n)
        pid = local.rnd.choice(world["products"])
        resp = session.post(
            f"{base}/api/v1/orders",
            headers=local.headers,
            timeout=30,
            json={"items": [{"product_id": pid, "quantity": 1}], "address": ADDRESS},
        )
        if resp.status_code != 201:
            return False
        order_id = resp.json()["orders"][0]["id"]
        done = session.post(
            f"{base}/api/v1/orders/{order_id}/pay", headers=local.headers, timeout=30
        )
        ok = done.status_code == 200 and done.json()["status"] == "paid"
        if ok:
            with lock:
                paid[0] += 1
        return ok

    return checkout_and_pay, paid


def pay_for(ctx, session, world, product_id: int) -> bool:
    """One checkout of ``product_id`` by the first buyer, then its payment."""
    headers = world["buyers"][0]
    resp = session.post(
        f"{ctx.url}/api/v1/orders",
        headers=headers,
        timeout=30,
        json={"items": [{"product_id": product_id, "quantity": 1}], "address": ADDRESS},
    )
    if resp.status_code != 201:
        return False
    order_id = resp.json()["orders"][0]["id"]
    done = session.post(f"{ctx.url}/api/v1/orders/{order_id}/pay", headers=headers, timeout=30)
    return done.status_code == 200


def measure(ctx, counters: Counters, label: str) -> dict:
    """One window: settle (the idle baseline), the load, quiet again, settle, read."""
    world = seed(ctx)
    fn, paid = buyer_round(ctx, world)
    warm = requests.Session()
    # every product sold once before the window: orders' pool of each holds a grant, as in a
    # shop that has been selling (a product's first sale after a start or a stock change asks
    # the catalog for a grant; then one grant per ``stock_grant_units`` units sold)
    for pid in world["products"]:
        assert pay_for(ctx, warm, world, pid), f"a checkout → pay round failed ({label})"
    wait_quiet(ctx, counters)
    time.sleep(SETTLE)  # the counters of the seeding and the round above arrive late
    idle_cpu0, r0 = cpu_snapshot(ctx.platform), counters.read()
    time.sleep(SETTLE)
    idle_cpu1, r1 = cpu_snapshot(ctx.platform), counters.read()
    idle_seconds = r1["at"] - r0["at"]
    paid[0] = 0
    cpu0, me0, t0 = cpu_snapshot(ctx.platform), self_ticks(), time.monotonic()
    result = ctx.load(fn, concurrency=CONCURRENCY, duration=DURATION)
    load_seconds = time.monotonic() - t0
    wait_quiet(ctx, counters)
    cpu1, me1, t1 = cpu_snapshot(ctx.platform), self_ticks(), time.monotonic()
    time.sleep(SETTLE)
    r2 = counters.read()
    orders = paid[0]
    if not orders:
        raise RuntimeError(f"no order was paid in the {label} window")
    window = t1 - t0
    cpu_ms = {k: (cpu1.get(k, 0) - cpu0.get(k, 0)) * 1000 / TICK for k in cpu1}
    idle_ms_per_s = {
        k: (idle_cpu1.get(k, 0) - idle_cpu0.get(k, 0)) * 1000 / TICK / idle_seconds
        for k in idle_cpu1
    }
    counted_seconds = r2["at"] - r1["at"]

    def per_order(key: str) -> float | None:
        if key not in r2:
            return None
        idle_rate = (r1[key] - r0[key]) / idle_seconds
        return max(0.0, (r2[key] - r1[key] - idle_rate * counted_seconds)) / orders

    return {
        "label": label,
        "paid": orders,
        "rps": orders / load_seconds,  # every paid order (warm-up included) over the load
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "errors": result["errors"],
        "window_s": window,
        "cpu_ms_per_order": sum(cpu_ms.values()) / orders,
        "cpu_breakdown": {k: round(v / orders, 2) for k, v in sorted(cpu_ms.items())},
        # per process, its CPU per order less its own idle rate (its timers, and for
        # PostgreSQL/RabbitMQ other tenants) over the window
        "cpu_less_idle": {
            k: round((v - idle_ms_per_s.get(k, 0.0) * window) / orders, 2)
            for k, v in sorted(cpu_ms.items())
        },
        "idle_cpu_ms_per_s": round(sum(idle_ms_per_s.values()), 1),
        # the same window's CPU less the idle rate (timers, other tenants of PostgreSQL and
        # RabbitMQ): what the orders themselves cost, an estimate
        "cpu_ms_per_order_less_idle": round(
            (sum(cpu_ms.values()) - sum(idle_ms_per_s.values()) * window) / orders, 2
        ),
        "loadgen_cpu_ms_per_order": round((me1 - me0) * 1000 / TICK / orders, 2),
        "rpc": per_order("rpc"),
        "calls": per_order("calls"),
        "publish": per_order("publish"),
        "confirm": per_order("confirm"),
        "xacts": per_order("xacts"),
        "row_writes": per_order("row_writes"),
        "statements": per_order("statements"),
        "statements_sync": per_order("statements_sync"),
        "statements_by_service": {
            k.split(":", 1)[1]: _r(per_order(k)) for k in sorted(r2) if k.startswith("statements:")
        },
    }


def wait_consumers(ctx, services, count: int, timeout: float = 90.0) -> None:
    """Until each service's RPC queue has ``count`` consumers (the new instances are up)."""
    vhost = requests.utils.quote(ctx.vhost, safe="")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for key, proc in ctx.platform.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{key} exited with {proc.returncode}")
        queues = requests.get(
            f"{MGMT}/api/queues/{vhost}",
            auth=AUTH,
            timeout=10,
            params={"columns": "name,consumers"},
        ).json()
        have = {q["name"]: q.get("consumers", 0) for q in queues}
        if all(have.get(f"rpc-{s}", 0) >= count for s in services):
            return
        time.sleep(1)
    raise RuntimeError(f"second instances of {services} did not start consuming in {timeout}s")


def echo_floor_with_cpu(ctx, counters: Counters) -> dict:
    """The echo floor (``GET /api/v1/echo``: gateway → catalog RPC → reply), measured here with
    every request counted, and the CPU one echo costs in the gateway, the catalog and RabbitMQ:
    the price of one hop of our plumbing. Then the same load on ``GET /api/v1/echo/local`` (the
    gateway answers alone, through the same route machinery): its CPU per request is what an
    HTTP request costs without the hop, so echo − local is what one RPC hop adds."""
    floor = _echo_load(ctx, counters, "/api/v1/echo")
    floor["cpu_ms_per_echo"] = floor.pop("cpu_ms")
    local = _echo_load(ctx, counters, "/api/v1/echo/local")
    floor["local"] = {"rps": local["rps"], "cpu_ms": local["cpu_ms"]}
    door = _echo_load(ctx, counters, "/api/v1/echo/orders", parts=DOOR_PARTS)
    floor["door"] = {"rps": door["rps"], "cpu_ms": door["cpu_ms"]}
    return floor


ECHO_PARTS = ("gateway", "catalog", "rabbitmq")  # the processes an echo runs through
DOOR_PARTS = ("gateway", "orders", "rabbitmq")  # the echo through orders' HTTP door


def _echo_load(ctx, counters: Counters, path: str, parts: tuple = ECHO_PARTS) -> dict:
    url = f"{ctx.url}{path}"
    done = [0]
    lock = threading.Lock()

    def echo(session):
        ok = session.get(url, timeout=10).status_code == 200
        if ok:
            with lock:
                done[0] += 1
        return ok

    wait_quiet(ctx, counters)
    before = cpu_snapshot(ctx.platform)
    measured = ctx.load(echo, concurrency=CONCURRENCY, duration=DURATION)
    after = cpu_snapshot(ctx.platform)
    measured["cpu_ms"] = {
        k: round((after.get(k, 0) - before.get(k, 0)) * 1000 / TICK / max(1, done[0]), 3)
        for k in parts
    }
    return measured


def publish_cost(ctx, messages: int = 1000, rounds: int = 3) -> dict:
    """CPU per RPC-sized publish, nameko's stock ``Publisher`` (confirm per publish, persistent,
    a kombu ``Connection`` built per publish) against ``shared.rpc.RpcPublisher``, in this
    process and in RabbitMQ, alternating ``rounds`` times on one queue of this run's vhost: the
    plumbing change measured by itself, less exposed to the machine's other load than the
    platform figures. Medians of the rounds."""
    from kombu import Connection, Exchange, Queue
    from nameko.amqp.publish import Publisher

    from shared.rpc import RpcPublisher

    queue = Queue("bench.publish_cost", exchange=Exchange(""), routing_key="bench.publish_cost")
    with Connection(ctx.amqp_uri) as conn:
        queue(conn.channel()).declare()
    body = {"args": [7, "bench tea", {"quantity": 1}], "kwargs": {"reason": "x" * 200}}
    headers = {"nameko.call_id_stack": ["gateway.http.0"], "nameko.xp_deadline": 1e9}
    publishers = {
        "nameko": Publisher(ctx.amqp_uri),
        "ours": RpcPublisher(ctx.amqp_uri),
    }
    samples: dict[str, list[tuple[float, float, float]]] = {k: [] for k in publishers}
    for _ in range(rounds):
        for name, publisher in publishers.items():
            publisher.publish(body, routing_key=queue.name, headers=headers)  # warm the pool
            broker0 = cpu_snapshot(ctx.platform).get("rabbitmq", 0)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for _ in range(messages):
                publisher.publish(body, routing_key=queue.name, headers=headers)
            cpu1, wall1 = time.process_time(), time.perf_counter()
            broker1 = cpu_snapshot(ctx.platform).get("rabbitmq", 0)
            samples[name].append(
                (
                    (cpu1 - cpu0) * 1e6 / messages,
                    (broker1 - broker0) * 1000 / TICK * 1000 / messages,
                    (wall1 - wall0) * 1e6 / messages,
                )
            )
    with Connection(ctx.amqp_uri) as conn:
        queue(conn.channel()).delete()

    def median(name: str, i: int) -> float:
        values = sorted(sample[i] for sample in samples[name])
        return values[len(values) // 2]

    keys = ("client_us", "broker_us", "wall_us")
    return {name: {k: median(name, i) for i, k in enumerate(keys)} for name in publishers}


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def figures(one: dict, two: dict, floor: dict) -> list[dict]:
    echo = floor["rps"]
    base = {"floor_name": "gateway→RPC echo", "floor_value": round(echo, 2)}
    statements = one["statements"]
    echo_cpu = floor["cpu_ms_per_echo"]
    local_cpu = floor["local"]["cpu_ms"]
    hop = sum(echo_cpu.values()) - sum(local_cpu.values())
    door_cpu = floor["door"]["cpu_ms"]
    door_hop = sum(door_cpu.values()) - sum(local_cpu.values())
    cost = floor["publish_cost"]
    stock, ours = cost["nameko"], cost["ours"]
    out = [
        {
            "name": "RPC publish: CPU-µs per publish, ours (no confirm, pooled) / nameko's stock",
            "value": round(
                (ours["client_us"] + ours["broker_us"]) / (stock["client_us"] + stock["broker_us"]),
                3,
            ),
            "unit": "×",
            "breakdown": {
                "nameko client µs": round(stock["client_us"], 1),
                "nameko broker µs": round(stock["broker_us"], 1),
                "nameko wall µs": round(stock["wall_us"], 1),
                "ours client µs": round(ours["client_us"], 1),
                "ours broker µs": round(ours["broker_us"], 1),
                "ours wall µs": round(ours["wall_us"], 1),
            },
        },
        {
            "name": "echo floor: CPU-ms per gateway → RPC echo (gateway + catalog + RabbitMQ)",
            "value": round(sum(echo_cpu.values()), 3),
            "unit": "ms",
            "breakdown": {**echo_cpu, "echo/s": round(echo, 1)},
        },
        {
            "name": "one RPC hop: CPU-ms it adds to a request (echo − the gateway's local echo)",
            "value": round(hop, 3),
            "unit": "ms",
            "breakdown": {
                "local echo CPU-ms (gateway + catalog + RabbitMQ)": local_cpu,
                "local echo/s": round(floor["local"]["rps"], 1),
                "a paid order's two hops": round(2 * hop, 3),
            },
        },
        {
            "name": "one hop through orders' HTTP door (checkout's and pay's way, "
            "shared/httprpc.py): CPU-ms it adds / the RPC hop's",
            "value": round(door_hop / hop, 3) if hop > 0 else None,
            "unit": "×",
            "breakdown": {
                "door hop CPU-ms": round(door_hop, 3),
                "RPC hop CPU-ms": round(hop, 3),
                "door echo CPU-ms (gateway + orders + RabbitMQ)": door_cpu,
                "door echo/s": round(floor["door"]["rps"], 1),
            },
        },
        {
            "name": "money path: paid orders/s, checkout → paid through the gateway (20 buyers)",
            "value": round(one["rps"], 2),
            "unit": "orders/s",
            "p50_ms": round(one["p50_ms"], 2),
            "p99_ms": round(one["p99_ms"], 2),
            **base,
            "ratio": round(one["rps"] / echo, 3) if echo else None,
            "goal": "≥ 0.2× echo",
            **({"errors": one["errors"]} if one["errors"] else {}),
        },
        {
            "name": "money path: CPU-ms per paid order, all processes",
            "value": round(one["cpu_ms_per_order"], 2),
            "unit": "ms",
            "goal": "≤ 16 ms",
            "breakdown": {
                **one["cpu_breakdown"],
                "idle_cpu_ms_per_s": one["idle_cpu_ms_per_s"],
                "less idle": one["cpu_ms_per_order_less_idle"],
                "less idle by process": one["cpu_less_idle"],
                "window_s": round(one["window_s"], 2),
                "paid": one["paid"],
                "loadgen (not counted)": one["loadgen_cpu_ms_per_order"],
            },
        },
        {
            "name": "money path: RPC requests per paid order (over RabbitMQ or orders' HTTP door)",
            "value": _r(one["calls"]),
            "unit": "RPCs",
            "goal": "≤ 2",
            "breakdown": {"of them over RabbitMQ (rpc-* queues)": _r(one["rpc"])},
        },
        {
            "name": "money path: broker publishes per paid order",
            "value": _r(one["publish"]),
            "unit": "publishes",
            "breakdown": {"publisher confirms per paid order": _r(one["confirm"])},
        },
        {
            "name": "money path: PostgreSQL transactions per paid order",
            "value": _r(one["xacts"]),
            "unit": "transactions",
            "breakdown": {"rows written per paid order": _r(one["row_writes"])},
        },
        {
            "name": "money path: SQL statements per paid order, synchronous path",
            "value": _r(one["statements_sync"]),
            "unit": "statements",
            "goal": "≤ 12",
            "breakdown": {
                "entrypoints": sorted(f"{s}.{e}" for s, e in SYNC_PATH),
                "all statements per paid order (consumers and timers too)": _r(statements),
                "by service": one["statements_by_service"],
            },
        },
        {
            "name": "scale-out: paid orders/s, 2 instances of orders, catalog, payouts, share",
            "value": round(two["rps"], 2),
            "unit": "orders/s",
            "p50_ms": round(two["p50_ms"], 2),
            "p99_ms": round(two["p99_ms"], 2),
            **base,
            "ratio": round(two["rps"] / echo, 3) if echo else None,
            **({"errors": two["errors"]} if two["errors"] else {}),
        },
        {
            "name": "scale-out: CPU-ms per paid order, 2 instances",
            "value": round(two["cpu_ms_per_order"], 2),
            "unit": "ms",
            "breakdown": {
                **two["cpu_breakdown"],
                "idle_cpu_ms_per_s": two["idle_cpu_ms_per_s"],
                "less idle": two["cpu_ms_per_order_less_idle"],
                "less idle by process": two["cpu_less_idle"],
                "rpc": _r(two["calls"]),
                "publish": _r(two["publish"]),
                "xacts": _r(two["xacts"]),
            },
        },
        {
            "name": "scale-out: CPU per paid order, 2 instances / 1 instance",
            "value": round(two["cpu_ms_per_order"] / one["cpu_ms_per_order"], 3),
            "unit": "×",
            "goal": "≤ 1.10",
        },
    ]
    return out


def run(ctx) -> list[dict]:
    if ctx.platform is None:
        raise RuntimeError("the money-path benchmark needs the launcher's Platform (ctx.platform)")
    counters = Counters(ctx)
    try:
        floor = echo_floor_with_cpu(ctx, counters)
        floor["publish_cost"] = publish_cost(ctx)
        one = measure(ctx, counters, "1 instance")
        extra = [f"{s}-2" for s in SCALED]
        try:
            for service, key in zip(SCALED, extra, strict=True):
                ctx.platform.start_service(service, key=key)
            wait_consumers(ctx, SCALED, 2)
            two = measure(ctx, counters, "2 instances")
        finally:
            for key in extra:
                ctx.platform.stop_service(key)
    finally:
        counters.close()
    return [*figures(one, two, floor), invariants_after(ctx)]


def invariants_after(ctx, timeout: float = 60.0) -> dict:
    """The platform's money and stock invariants after both windows, once their events have
    landed, checked by the operator's command (``python -m shared.invariants``, what ``make
    check`` runs, with the services' environment): no stock oversold or lost, one accrual per
    paid order, balanced books, share stats, nothing parked. Run until all hold or
    ``timeout`` (events still in flight settle within seconds); any still failing fails the
    benchmark with what the checker found — a throughput bought with broken books is no figure."""
    deadline = time.monotonic() + timeout
    done = ctx.platform.check_invariants("--json")
    while done.returncode != 0 and time.monotonic() < deadline:
        time.sleep(1.0)
        done = ctx.platform.check_invariants("--json")
    if done.returncode != 0:
        raise AssertionError(
            "invariants fail after the money-path load:\n" + done.stdout + done.stderr
        )
    checked = {r["name"]: f"ok, {r['checked']} checked" for r in json.loads(done.stdout)}
    return {
        "name": "invariants after the load (python -m shared.invariants): failing",
        "value": 0,
        "unit": "invariants",
        "goal": "0",
        "breakdown": checked,
    }
