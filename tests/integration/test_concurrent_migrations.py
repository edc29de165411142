"""Any number of instances may start at once: their migrations of one fresh PostgreSQL database
run one after the other under an advisory lock (shared.migrations.upgrade), never side by side."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest
from alembic.script import ScriptDirectory

from shared.migrations import alembic_config, migration_lock_key

ROOT = Path(__file__).resolve().parents[2]
INSTANCES = 4

# Each process imports alembic first, then waits for the same instant, so the four upgrades
# really start together (imports take longer than the migrations themselves).
UPGRADE_AT = """
import sys, time
from shared.migrations import upgrade
service, url, at = sys.argv[1], sys.argv[2], float(sys.argv[3])
time.sleep(max(0.0, at - time.time()))
upgrade(service, url)
print("migrated")
"""


def pg_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg2://", "postgresql://")


@pytest.mark.postgres_only
@pytest.mark.parametrize("service", ["shop", "orders"])
def test_four_instances_migrating_one_fresh_database_at_once_all_succeed(service, make_database):
    url = make_database(service, migrate=False)  # fresh, empty, dropped after the test
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    start_at = time.time() + 4.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", UPGRADE_AT, service, url, str(start_at)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(INSTANCES)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * INSTANCES, "\n".join(outputs)
    assert all(out.strip().endswith("migrated") for out in outputs)

    head = ScriptDirectory.from_config(alembic_config(service, url)).get_current_head()
    conn = psycopg2.connect(pg_dsn(url))
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT version_num FROM alembic_version_{service}")
        assert cur.fetchall() == [(head,)]
        key = migration_lock_key(service)
        cur.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND classid = %s AND objid = %s",
            ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
        )
        assert cur.fetchone() == (0,)  # released, not held by a leftover session
    finally:
        conn.close()


def test_each_service_has_its_own_migration_lock():
    keys = {s: migration_lock_key(s) for s in ("catalog", "shop", "share", "orders", "payouts")}
    assert len(set(keys.values())) == len(keys)
    assert all(-(2**63) <= k < 2**63 for k in keys.values())  # PostgreSQL's bigint
