"""What one transaction costs on PostgreSQL, with its BEGIN sent on its own (psycopg2's way)
and folded into its first statement (``shared/pg.py``, the default) — measured in the same run.

The transaction has the shape of a payment in orders: an ``UPDATE … RETURNING`` and an
``INSERT``, committed, run as a service runs it (a process of its own with eventlet's green
psycopg2, where each round trip is also a switch through the hub). Its cost is the CPU of both
ends — that process (the client) and the PostgreSQL backend serving its one connection
(``/proc/<pid>/stat``) — per transaction, rounds of each kind alternating so that a machine
whose speed drifts treats both alike. A separate
BEGIN is a round trip of its own: four per transaction against three.

Figures: CPU-µs per transaction with the BEGIN folded, and its ratio to the same transaction
with psycopg2's separate BEGIN (the floor). Runs on a scratch database of its own. Alone:
``python benchmarks/bench_transactions.py``, or ``python benchmarks/run_all.py --only
transactions``.
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TRANSACTIONS = 3000  # per round
ROUNDS = 4  # of each kind, alternating
TICK = os.sysconf("SC_CLK_TCK")


def _ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _round(engine, text) -> float:
    """CPU-µs (client + server) per transaction over one round."""
    with engine.connect() as conn:
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        conn.rollback()
    server0, client0 = _ticks(backend), os.times()
    for _ in range(TRANSACTIONS):
        with engine.begin() as conn:
            conn.execute(text("UPDATE o SET n = n + 1 WHERE id = 1 RETURNING n")).scalar_one()
            conn.execute(text("INSERT INTO h (o, at) VALUES (1, now())"))
    client1, server1 = os.times(), _ticks(backend)
    client = (client1.user + client1.system) - (client0.user + client0.system)
    return (client + (server1 - server0) / TICK) * 1e6 / TRANSACTIONS


def measure() -> dict:
    from sqlalchemy import text

    from benchmarks.common import scratch_database
    from shared.db import make_engine

    url, drop = scratch_database("transactions")
    engines = {}
    try:
        engines = {fold: make_engine(url, pool_size=1, fold_begin=fold) for fold in (False, True)}
        with engines[False].begin() as conn:
            conn.execute(text("CREATE TABLE o (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
            conn.execute(text("INSERT INTO o VALUES (1, 0)"))
            conn.execute(text("CREATE TABLE h (id SERIAL PRIMARY KEY, o INTEGER, at TIMESTAMPTZ)"))
        costs: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(ROUNDS):
            for fold in (False, True):
                costs[fold].append(_round(engines[fold], text))
        return {fold: statistics.median(values) for fold, values in costs.items()} | {
            "rounds": costs
        }
    finally:
        for engine in engines.values():
            engine.dispose()
        drop()


def _green_measure() -> dict:
    """``measure()`` in a child process patched as a service is (``shared.run``'s eventlet
    monkey-patching and green psycopg2), read back as JSON."""
    import json
    import subprocess

    out = subprocess.run(
        [sys.executable, __file__, "--child"], check=True, capture_output=True, text=True
    ).stdout
    got = json.loads(out.strip().splitlines()[-1])
    return {
        True: got["true"],
        False: got["false"],
        "rounds": {True: got["rounds"]["true"], False: got["rounds"]["false"]},
    }


def run(ctx) -> list[dict]:
    got = _green_measure()
    folded, separate = got[True], got[False]
    return [
        {
            "name": "a two-statement transaction: CPU-µs, client + server, BEGIN folded",
            "value": round(folded, 1),
            "unit": "µs",
            "floor_name": "the same with psycopg2's separate BEGIN",
            "floor_value": round(separate, 1),
            "ratio": round(folded / separate, 3),
            "breakdown": {
                "folded µs per round": [round(v, 1) for v in got["rounds"][True]],
                "separate µs per round": [round(v, 1) for v in got["rounds"][False]],
            },
        }
    ]


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        import json

        import eventlet

        eventlet.monkey_patch()  # as shared.run does: psycopg2 turns green too
        got = measure()
        print(
            json.dumps(
                {
                    "true": got[True],
                    "false": got[False],
                    "rounds": {"true": got["rounds"][True], "false": got["rounds"][False]},
                }
            )
        )
    else:
        for figure in run(None):
            print(figure)
