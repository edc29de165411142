"""Alembic per service: its own history under ``services/<svc>/migrations`` and its own version
table (``alembic_version_<svc>``), so services could even share one database without clashing.

``python -m shared.migrations upgrade [service ...]`` applies them (``make migrate``; ``make run``
does it before starting the services); ``python -m shared.migrations revision <service> -m "..."``
autogenerates a new one.

On PostgreSQL an upgrade runs under a session advisory lock keyed by the service name
(``pg_advisory_lock``), on the very connection that migrates: any number of instances of a service
may start (and migrate) at once; the first migrates, the others wait for it and then find the
database at head. A deploy may still run the migrate step alone first (``python -m
shared.migrations upgrade <service>``, then start the instances with ``--no-migrate``) so a
failing migration stops the rollout before any new instance starts.
"""

from __future__ import annotations

import warnings

# shared.config imports nameko, which imports eventlet: keep its deprecation notice (ten lines)
# out of ``make run`` / ``make migrate`` output, as shared.run does
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import sys  # noqa: E402

from alembic import command  # noqa: E402
from alembic.config import Config as AlembicConfig  # noqa: E402
from sqlalchemy import create_engine, pool, text  # noqa: E402
from sqlalchemy.engine import Connection  # noqa: E402

from shared.config import ROOT, SERVICES, load_config  # noqa: E402


def alembic_config(service: str, url: str | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(ROOT / "services" / service / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url or load_config(service)["DATABASE_URL"])
    cfg.attributes["service"] = service
    return cfg


def migration_lock_key(service: str) -> int:
    """The advisory lock id of ``service``'s migrations: a stable signed 64-bit hash of its name
    (Python's hash() changes per process, so it cannot be used)."""
    digest = hashlib.sha256(f"xiaopu.migrations.{service}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def upgrade(service: str, url: str | None = None, revision: str = "head") -> None:
    cfg = alembic_config(service, url)
    url = cfg.get_main_option("sqlalchemy.url") or ""
    if not url.startswith("postgresql"):
        command.upgrade(cfg, revision)  # SQLite: one file per service, one process migrates it
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            key = migration_lock_key(service)
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            connection.commit()  # the lock is the session's: it outlives this transaction
            try:
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, revision)
            finally:
                connection.rollback()  # a failed migration leaves an aborted transaction
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
    finally:
        engine.dispose()


def run_env(target_metadata, service: str) -> None:
    """Body of every service's ``migrations/env.py``."""
    from alembic import context
    from sqlalchemy import engine_from_config

    config = context.config
    version_table = f"alembic_version_{service}"
    url = config.get_main_option("sqlalchemy.url") or ""

    def migrate_on(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=version_table,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()

    given = config.attributes.get("connection")
    if given is not None:  # upgrade(): the connection that holds the advisory lock
        migrate_on(given)
        return
    if context.is_offline_mode():
        context.configure(
            url=url,
            target_metadata=target_metadata,
            literal_binds=True,
            version_table=version_table,
            render_as_batch=url.startswith("sqlite"),
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connectable = engine_from_config(
        {"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with connectable.connect() as connection:
        migrate_on(connection)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="per-service Alembic migrations")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("upgrade")
    up.add_argument("services", nargs="*", default=list(SERVICES))
    rev = sub.add_parser("revision")
    rev.add_argument("service")
    rev.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    if args.cmd == "upgrade":
        for svc in args.services:
            upgrade(svc)
            print(f"migrated {svc}")
    else:
        command.revision(alembic_config(args.service), message=args.message, autogenerate=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
