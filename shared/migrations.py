"""Alembic per service: its own history under ``services/<svc>/migrations`` and its own version
table (``alembic_version_<svc>``), so services could even share one database without clashing.

``python -m shared.migrations upgrade [service ...]`` applies them (``make run`` does this);
``python -m shared.migrations revision <service> -m "..."`` autogenerates a new one.
"""

from __future__ import annotations

import argparse
import sys

from alembic import command
from alembic.config import Config as AlembicConfig

from shared.config import ROOT, SERVICES, load_config


def alembic_config(service: str, url: str | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(ROOT / "services" / service / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url or load_config(service)["DATABASE_URL"])
    cfg.attributes["service"] = service
    return cfg


def upgrade(service: str, url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, url), revision)


def run_env(target_metadata, service: str) -> None:
    """Body of every service's ``migrations/env.py``."""
    from alembic import context
    from sqlalchemy import engine_from_config, pool

    config = context.config
    version_table = f"alembic_version_{service}"
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit(f"migrations of {service}: no sqlalchemy.url configured")
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
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=version_table,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


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
