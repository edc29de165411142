"""``python -m shared.invariants`` (``make check``) on the running platform: a small story
passes every invariant; one corrupted row fails the check and the table names the invariant."""

from __future__ import annotations

import subprocess

import psycopg2
from sqlalchemy.engine import make_url

from scripts.launcher import SERVICES
from shared.invariants import Sources, check
from tests.e2e.story import (
    checkout,
    eventually,
    keeper_with_shop,
    member,
    pay_ship_confirm,
    pick,
    product,
    share,
    supplier,
)


def run_checker(platform) -> subprocess.CompletedProcess:
    """The operator's command, with the environment the services run with."""
    return platform.platform.check_invariants()


def all_hold(src: Sources) -> bool:
    return all(r.ok for r in check(src))


def connect(url: str):
    u = make_url(url)
    return psycopg2.connect(
        dbname=u.database, user=u.username, host=u.host, port=u.port, password=u.password
    )


def test_the_invariant_checker_passes_on_a_story_and_names_a_corrupted_row(api, platform):
    assert set(platform.db_urls) == set(SERVICES)
    sup = supplier(api)
    tea = product(api, sup, "古树红茶", 9_900, 2_000, stock=50)
    keeper, shop = keeper_with_shop(api)
    pick(api, keeper, shop, tea)
    code = share(api, keeper, shop, tea)["code"]
    buyer = member(api)
    orders = checkout(api, buyer, [(tea, 2)], share_code=code)
    pay_ship_confirm(api, buyer, orders, {sup["id"]: sup})
    unpaid = checkout(api, member(api), [(tea, 1)])  # held stock counts too
    assert unpaid[0]["status"] == "created"

    src = Sources(dict(platform.db_urls), platform.amqp_uri)
    eventually(lambda: all_hold(src), timeout=60)  # events in flight have landed
    done = run_checker(platform)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all invariants hold" in done.stdout

    # an accrual vanishes from the books: the check fails and says which invariant
    order_id = orders[0]["id"]
    conn = connect(platform.db_urls["payouts"])
    conn.autocommit = True
    removed: list = []
    try:
        with conn.cursor() as cur:
            # the journal is append-only (a trigger refuses DELETE): this session bypasses it,
            # as only a superuser at the console could
            cur.execute("SET session_replication_role = replica")
            cur.execute(
                "DELETE FROM journal WHERE entry_id = %s "
                "RETURNING entry_id, kind, account, party_id, order_id, amount_fen, posted_at",
                (f"accrue:{order_id}",),
            )
            removed = cur.fetchall()
        assert removed
        failed = run_checker(platform)
        assert failed.returncode == 1, failed.stdout
        assert "FAILED: accrued_once" in failed.stdout
        assert f"order {order_id}: paid, accrued 0 times" in failed.stdout
    finally:
        with conn.cursor() as cur:  # the platform is shared with the other end-to-end tests
            cur.executemany(
                "INSERT INTO journal (entry_id, kind, account, party_id, order_id, amount_fen, "
                "posted_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                removed,
            )
        conn.close()
    assert all_hold(src)
