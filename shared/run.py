"""Run one service the way production does: ``python -m shared.run <service>``.

Waits for the broker, applies the service's migrations (domain services), then runs the nameko
service in this process. ``make run`` starts one of these per service.
"""

from __future__ import annotations

import warnings

# eventlet's notice (an EventletDeprecationWarning, a plain Warning, whose text starts with a
# newline) would print ten lines in every process; the project knows (STYLE.md).
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()  # noqa: E402  (before anything opens a socket)

import argparse  # noqa: E402
import importlib  # noqa: E402
import inspect  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from kombu import Connection  # noqa: E402

from shared import logs  # noqa: E402
from shared.config import ALL_SERVICES, SERVICES, load_config  # noqa: E402


def wait_for_broker(amqp_uri: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with Connection(amqp_uri, connect_timeout=2) as conn:
                conn.ensure_connection(max_retries=1)
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"no RabbitMQ answers at {amqp_uri}: {exc}. "
                    "Start it (rabbitmq-server -detached) or set AMQP_URI."
                ) from exc
            time.sleep(1)


def service_class(service: str):
    module = importlib.import_module(f"{service}.service")
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if getattr(obj, "name", None) == service and obj.__module__ == module.__name__:
            return obj
    raise SystemExit(f"no nameko service named {service!r} in {module.__name__}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", choices=ALL_SERVICES)
    parser.add_argument("--no-migrate", action="store_true")
    args = parser.parse_args(argv)
    config = load_config(args.service)
    from shared.instance import instance_id

    logs.configure(
        args.service, config.get("LOG_LEVEL", "INFO"), config.get("LOG_FORMAT"), instance_id(config)
    )
    wait_for_broker(config["AMQP_URI"])
    if args.service in SERVICES and not args.no_migrate:
        from shared.migrations import upgrade

        upgrade(args.service, config["DATABASE_URL"])
    if args.service == "gateway":  # a process of its own: exit when the drain period is over
        from gateway.drain import EXIT_WATCHDOG_KEY

        config[EXIT_WATCHDOG_KEY] = True
    cls = service_class(args.service)
    from nameko.cli.run import run

    run([cls], config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
