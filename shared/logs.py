"""Logging that carries a correlation id from the HTTP request through every RPC and event.

The gateway starts a correlation id per request (or takes the client's ``X-Request-Id``);
nameko copies ``worker_ctx.data`` into the headers of every RPC it makes, the outbox stores it
with each event and the relay sends it as a header, so every worker downstream sees the same id.
``Correlation`` is the dependency that picks it up and puts it on every log line.

Every line also names the service and the instance (``shared.instance``: ``XIAOPU_INSTANCE_ID``
or host:pid). ``LOG_FORMAT=json`` writes one JSON object per line instead of text: ``time``,
``level``, ``service``, ``instance``, ``correlation_id``, ``logger``, ``message`` (and ``exc``
with the traceback when there is one).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime

from nameko.extensions import DependencyProvider

from shared.ids import new_id

_local = threading.local()  # greenthread-local once eventlet has monkey-patched threading

CORRELATION_KEY = "correlation_id"


def current_correlation_id() -> str | None:
    return getattr(_local, "correlation_id", None)


def set_correlation_id(value: str | None) -> None:
    _local.correlation_id = value


class CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = current_correlation_id() or "-"
        return True


class ExpectedErrorFilter(logging.Filter):
    """nameko logs every exception a worker raises as an error with its traceback, including
    the 4xx answers a service gives on purpose (NotFound, Conflict, RuleViolation...). Those
    become one INFO line, so an operator's ERRORs are the failures that need a look."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "nameko.containers" and record.exc_info:
            from shared.errors import XiaopuError

            exc = record.exc_info[1]
            if isinstance(exc, XiaopuError) and exc.status < 500:
                record.msg = "%s answered %s %s: %s"
                first = record.args[0] if isinstance(record.args, tuple) and record.args else None
                record.args = (
                    "worker" if first is None else getattr(first, "call_id", first),
                    exc.status,
                    exc.code,
                    exc.message,
                )
                record.levelno, record.levelname = logging.INFO, "INFO"
                record.exc_info = record.exc_text = None
        return True


class Correlation(DependencyProvider):
    """Reads (or starts) the correlation id of each worker and propagates it."""

    def worker_setup(self, worker_ctx):
        cid = worker_ctx.data.get(CORRELATION_KEY)
        if not cid and worker_ctx.args:  # an HTTP request: honour the client's X-Request-Id
            headers = getattr(worker_ctx.args[0], "headers", None)
            if headers is not None:
                cid = (headers.get("X-Request-Id") or "")[:64] or None
        cid = cid or new_id()
        worker_ctx.data[CORRELATION_KEY] = cid
        set_correlation_id(cid)

    def worker_teardown(self, worker_ctx):
        set_correlation_id(None)

    def get_dependency(self, worker_ctx):
        return worker_ctx.data.get(CORRELATION_KEY)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (``LOG_FORMAT=json``), for a log shipper to index."""

    def __init__(self, service: str, instance: str):
        super().__init__()
        self.service = service
        self.instance = instance

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "instance": self.instance,
            "correlation_id": getattr(record, "correlation_id", None) or current_correlation_id(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def text_formatter(service: str, instance: str) -> logging.Formatter:
    return logging.Formatter(
        f"%(asctime)s {service} {instance} %(levelname)s [%(correlation_id)s] %(name)s: %(message)s"
    )


def make_handler(
    service: str, instance: str | None = None, fmt: str | None = None, stream=None
) -> logging.Handler:
    """The platform's log handler: correlation id and instance on every line, text or JSON
    (``fmt``, default ``LOG_FORMAT`` from the environment, ``text``)."""
    from shared.instance import instance_id

    instance = instance or instance_id()
    fmt = (fmt or os.environ.get("LOG_FORMAT") or "text").strip().lower()
    handler = logging.StreamHandler(stream)
    handler.addFilter(CorrelationFilter())
    handler.addFilter(ExpectedErrorFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service, instance))
    else:
        handler.setFormatter(text_formatter(service, instance))
    return handler


def configure(
    service: str, level: str = "INFO", fmt: str | None = None, instance: str | None = None
) -> None:
    handler = make_handler(service, instance, fmt)
    # Neither format shows the caller's file and line, the thread or the process: don't have
    # every record look them up (findCaller walks the stack of each log call — about 1% of
    # the gateway's CPU, which writes an access line per request).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("kombu").setLevel("WARNING")
    # "Received method (60, 80) during closing channel": a returned mandatory RPC to a
    # service that is not up yet (the gateway answers 503 for it); noise, not news.
    logging.getLogger("amqp").setLevel("ERROR")
