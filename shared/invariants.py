"""``python -m shared.invariants`` (``make check``): the platform's money and stock invariants,
read from every service's own database and from the broker. Prints a table; exit 1 when any
invariant fails, 0 when all hold. Run it on a quiet platform (events still in flight show as
differences that settle within seconds).

The databases are those of each service's config (``<SERVICE>_DATABASE_URL``, the same
environment the services run with), the broker ``AMQP_URI``. Nothing is written.

Invariants:

``stock``
    Per product, the stock out of the catalog's hands equals the stock the orders service
    holds. The catalog keeps ``products.stock`` (what it can still give out), a reservation per
    order placed before orders' pool existed (lines that take stock while ``held`` or
    ``committed`` and give it back when ``released`` or ``returned``; a pool order's sale is
    recorded as a ``committed`` reservation from ``order_paid``) and ``products.allotted``
    (units granted to orders' pool and neither sold nor given back). Suppliers set ``stock``
    as an absolute number (no "initial stock" is kept), so conservation is checked across the
    two services: for every product, ``Σ held + committed reservation lines + allotted
    (catalog) = Σ quantities of the orders whose stock is out (stock_state reserved /
    to_commit / committed / to_release / to_return) + orders' pool units + grants in flight``
    (a grant the catalog made whose answer orders has not applied yet — ``asked`` there —
    counts on orders' side: the timer applies it), and ``stock, allotted, pool >= 0``. (A
    paid order is ``committed`` from its payment's transaction; the catalog commits from
    ``order_paid`` — held, allotted or committed there, the stock is out either way. A paid
    order whose stock the catalog refused to commit is ``commit_refused`` and holds none: the
    catalog tells orders with ``stock_commit_refused``.)
``accrued_once``
    Every order that was paid (``paid_at`` set, refunded or not) has exactly one accrual entry
    in the payouts journal (``accrue:<order id>``) for its paid amount, and no unpaid order
    has one.
``books_balanced``
    Every journal entry's postings sum to zero (so the whole journal does too).
``share_stats``
    The share service's stats read model (``paid_orders``) holds exactly the attributed paid
    orders (orders with a shop), with the same shop and share.
``nothing_parked``
    Every consumer's ``<queue>.dead`` is empty (``python -m shared.dlq list`` shows them).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from shared.config import SERVICES, load_config

# to_return: a paid order's stock on its way back (full refund before shipping), still out
STOCK_OUT = ("reserved", "to_commit", "committed", "to_release", "to_return")
SHOWN = 5  # problems listed per invariant


@dataclass
class Result:
    name: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Sources:
    """Where to read: each service's database URL and the broker."""

    databases: dict[str, str]
    amqp_uri: str

    @classmethod
    def from_config(cls) -> Sources:
        configs = {s: load_config(s) for s in SERVICES}
        return cls(
            {s: c["DATABASE_URL"] for s, c in configs.items()}, configs["orders"]["AMQP_URI"]
        )

    @contextmanager
    def db(self, service: str) -> Iterator[Connection]:
        engine = create_engine(self.databases[service], poolclass=NullPool)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()


def _rows(conn: Connection, sql: str, **params) -> list:
    return list(conn.execute(text(sql), params).all())


# --- the invariants --------------------------------------------------------------------------
def stock(src: Sources) -> Result:
    result = Result("stock")
    with src.db("catalog") as conn:
        products = {
            r.id: (int(r.stock), int(r.allotted))
            for r in _rows(conn, "SELECT id, stock, allotted FROM products")
        }
        out_catalog: Counter[int] = Counter()
        for r in _rows(
            conn,
            "SELECT l.product_id, SUM(l.quantity) AS q FROM reservation_lines l "
            "JOIN reservations r ON r.id = l.reservation_id "
            "WHERE r.status IN ('held', 'committed') GROUP BY l.product_id",
        ):
            out_catalog[int(r.product_id)] = int(r.q)
        for pid, (_stock, allotted) in products.items():
            out_catalog[pid] += allotted
        granted = {
            (r.grant_id, int(r.product_id)): int(r.quantity)
            for r in _rows(
                conn,
                "SELECT grant_id, product_id, quantity FROM stock_grants WHERE status = 'granted'",
            )
        }
    with src.db("orders") as conn:
        out_orders: Counter[int] = Counter()
        states = ", ".join(f"'{s}'" for s in STOCK_OUT)
        for r in _rows(
            conn,
            "SELECT i.product_id, SUM(i.quantity) AS q FROM order_items i "
            f"JOIN orders o ON o.id = i.order_id WHERE o.stock_state IN ({states}) "
            "GROUP BY i.product_id",
        ):
            out_orders[int(r.product_id)] = int(r.q)
        pool = {
            int(r.product_id): int(r.units)
            for r in _rows(conn, "SELECT product_id, units FROM stock_pool")
        }
        applied = {
            (r.grant_id, int(r.product_id))
            for r in _rows(
                conn, "SELECT grant_id, product_id FROM stock_grants WHERE state = 'applied'"
            )
        }
    for pid, units in pool.items():
        out_orders[pid] += units
    for (grant_id, pid), quantity in granted.items():
        if (grant_id, pid) not in applied:  # granted, its answer not applied yet: in flight
            out_orders[pid] += quantity
    for pid in sorted(set(products) | set(out_catalog) | set(out_orders)):
        result.checked += 1
        if pid not in products:
            result.problems.append(f"product {pid}: ordered or reserved but not in the catalog")
        elif min(products[pid]) < 0:
            result.problems.append(f"product {pid}: negative stock or allotted {products[pid]}")
        if pool.get(pid, 0) < 0:
            result.problems.append(f"product {pid}: negative pool {pool[pid]} at orders")
        if out_catalog[pid] != out_orders[pid]:
            result.problems.append(
                f"product {pid}: catalog holds {out_catalog[pid]} out (held+committed+allotted), "
                f"orders hold {out_orders[pid]} (orders+pool+grants in flight)"
            )
    return result


def accrued_once(src: Sources) -> Result:
    result = Result("accrued_once")
    with src.db("orders") as conn:
        paid = {
            int(r.id): int(r.paid_fen)
            for r in _rows(conn, "SELECT id, paid_fen FROM orders WHERE paid_at IS NOT NULL")
        }
    with src.db("payouts") as conn:
        entries: dict[int, set[str]] = defaultdict(set)
        cleared: Counter[int] = Counter()
        for r in _rows(
            conn,
            "SELECT order_id, entry_id, account, amount_fen FROM journal WHERE kind = 'accrual'",
        ):
            entries[int(r.order_id)].add(r.entry_id)
            if r.account == "platform_clearing":
                cleared[int(r.order_id)] -= int(r.amount_fen)
    for oid in sorted(set(paid) | set(entries)):
        result.checked += 1
        n = len(entries.get(oid, ()))
        if oid not in paid:
            result.problems.append(f"order {oid}: accrued but never paid")
        elif n != 1:
            result.problems.append(f"order {oid}: paid, accrued {n} times")
        elif cleared[oid] != paid[oid]:
            result.problems.append(f"order {oid}: paid {paid[oid]} fen, accrued {cleared[oid]} fen")
    return result


def books_balanced(src: Sources) -> Result:
    result = Result("books_balanced")
    with src.db("payouts") as conn:
        result.checked = int(
            conn.execute(text("SELECT COUNT(DISTINCT entry_id) FROM journal")).scalar_one()
        )
        for r in _rows(
            conn,
            "SELECT entry_id, SUM(amount_fen) AS total FROM journal GROUP BY entry_id "
            "HAVING SUM(amount_fen) <> 0 ORDER BY entry_id",
        ):
            result.problems.append(f"entry {r.entry_id}: postings sum to {int(r.total)} fen")
    return result


def share_stats(src: Sources) -> Result:
    result = Result("share_stats")
    with src.db("orders") as conn:
        attributed = {
            int(r.id): (int(r.shop_id), r.share_id)
            for r in _rows(
                conn,
                "SELECT id, shop_id, share_id FROM orders "
                "WHERE paid_at IS NOT NULL AND shop_id IS NOT NULL",
            )
        }
    with src.db("share") as conn:
        stats = {
            int(r.order_id): (int(r.shop_id), r.share_id)
            for r in _rows(conn, "SELECT order_id, shop_id, share_id FROM paid_orders")
        }
    for oid in sorted(set(attributed) | set(stats)):
        result.checked += 1
        if oid not in stats:
            result.problems.append(f"order {oid}: attributed and paid, missing from share stats")
        elif oid not in attributed:
            result.problems.append(f"order {oid}: in share stats, not an attributed paid order")
        elif stats[oid] != attributed[oid]:
            result.problems.append(
                f"order {oid}: share stats say (shop, share) {stats[oid]}, orders {attributed[oid]}"
            )
    return result


def nothing_parked(src: Sources) -> Result:
    from shared.queues import consumer_queues, queue_depths
    from shared.run import service_class

    result = Result("nothing_parked")
    queues = [q for s in SERVICES for q in consumer_queues(service_class(s), s)]
    depths = queue_depths(src.amqp_uri, [f"{q}.dead" for q in queues])
    result.checked = len(depths)
    for name, count in sorted(depths.items()):
        if count:
            result.problems.append(f"{name}: {count} parked event(s)")
    return result


INVARIANTS: dict[str, Callable[[Sources], Result]] = {
    "stock": stock,
    "accrued_once": accrued_once,
    "books_balanced": books_balanced,
    "share_stats": share_stats,
    "nothing_parked": nothing_parked,
}


def check(src: Sources, only: list[str] | None = None) -> list[Result]:
    results = []
    for name, fn in INVARIANTS.items():
        if only and name not in only:
            continue
        try:
            results.append(fn(src))
        except Exception as exc:  # a database or broker that cannot be read fails the check
            results.append(Result(name, problems=[f"could not check: {exc}"]))
    return results


def table(results: list[Result]) -> str:
    lines = [f"{'invariant':<16} {'result':<6} {'checked':>8}  problems", "-" * 72]
    for r in results:
        first = r.problems[0] if r.problems else ""
        lines.append(f"{r.name:<16} {'ok' if r.ok else 'FAIL':<6} {r.checked:>8}  {first}")
        for more in r.problems[1:SHOWN]:
            lines.append(f"{'':<33}{more}")
        if len(r.problems) > SHOWN:
            lines.append(f"{'':<33}... and {len(r.problems) - SHOWN} more")
    failed = [r.name for r in results if not r.ok]
    lines.append("-" * 72)
    lines.append(f"FAILED: {', '.join(failed)}" if failed else "all invariants hold")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=list(INVARIANTS), help="run only these")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    results = check(Sources.from_config(), args.only)
    if args.json:
        doc = [
            {"name": r.name, "ok": r.ok, "checked": r.checked, "problems": r.problems}
            for r in results
        ]
        json.dump(doc, sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(table(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
