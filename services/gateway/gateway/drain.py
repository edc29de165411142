"""The gateway's web server: drains on stop, and answers ``GET /metrics``.

On SIGTERM (``docker stop``, the supervisor, an orchestrator) nameko stops the entrypoints first;
the first HTTP entrypoint to stop calls ``drain()``, which at once

* closes the listening socket (a new connection is refused, so a load balancer or the reverse
  proxy sends it to another gateway),
* turns keep-alive off (a response in flight closes its connection),

then waits until no connection is in the middle of a request, at most ``XIAOPU_DRAIN_SECONDS``
(8 s). nameko then waits for the workers, stops the rest and the process exits. Run as a process
(``python -m shared.run gateway``) a watchdog also ends the process ``EXIT_MARGIN_SECONDS`` after
the drain period, whatever is still running, so the whole shutdown stays under
``XIAOPU_DRAIN_SECONDS`` + 2 s; compose's ``stop_grace_period`` (15 s) is set above that, so
Docker never has to SIGKILL a gateway in the middle of a response.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import eventlet
from eventlet import wsgi
from nameko.web.server import WebServer
from prometheus_client import Gauge

from shared.instance import setting
from shared.metrics import exposition

log = logging.getLogger(__name__)

DEFAULT_DRAIN_SECONDS = 8.0
EXIT_MARGIN_SECONDS = 2.0
# set by ``shared.run`` for a gateway process: after the drain period the process exits even if
# something hangs (never in a test, where the gateway shares its process with pytest)
EXIT_WATCHDOG_KEY = "_exit_after_drain"
# read at scrape time from the server below (the scrape itself is one of them)
HTTP_IN_FLIGHT = Gauge(
    "xiaopu_http_in_flight_requests",
    "Connections of this gateway in the middle of a request (what a drain waits for)",
)


def drain_seconds(config: dict) -> float:
    return float(setting(config, "XIAOPU_DRAIN_SECONDS", str(DEFAULT_DRAIN_SECONDS)))


def _exit_watchdog(seconds: float) -> None:
    """A real OS thread (not a green one, which a blocked hub would never run) that ends the
    process after ``seconds``."""
    threading = eventlet.patcher.original("threading")

    def bye() -> None:
        log.error("the gateway did not stop within its grace period: exiting now")
        os._exit(1)

    timer = threading.Timer(seconds, bye)
    timer.daemon = True
    timer.start()


class DrainingWebServer(WebServer):
    def __init__(self) -> None:
        super().__init__()
        self._conns: dict[int, list] = {}
        self._draining = False

    def start(self) -> None:
        HTTP_IN_FLIGHT.set_function(self.in_flight)  # this container's server, once bound
        super().start()

    def process_request(self, sock: Any, address: Any) -> None:
        state = [address, sock, wsgi.STATE_IDLE]  # eventlet marks it "request" while serving
        self._conns[id(state)] = state
        try:
            self._serv.process_request(state)
        except OSError as exc:  # nameko's: a client that disconnects very early
            if "raw readinto() returned invalid length" in str(exc):
                return
            raise
        finally:
            self._conns.pop(id(state), None)

    def in_flight(self) -> int:
        return sum(1 for state in list(self._conns.values()) if state[2] == wsgi.STATE_REQUEST)

    def drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        config = self.container.config
        seconds = drain_seconds(config)
        if config.get(EXIT_WATCHDOG_KEY):
            _exit_watchdog(seconds + EXIT_MARGIN_SECONDS)
        self._is_accepting = False
        if self._gt is not None:
            self._gt.kill()
        if self._sock is not None:
            self._sock.close()
        if self._serv is not None:
            self._serv.keepalive = False
        deadline = time.monotonic() + seconds
        log.info("draining: new connections refused, %d request(s) in flight", self.in_flight())
        while self.in_flight() and time.monotonic() < deadline:
            eventlet.sleep(0.05)
        left = self.in_flight()
        if left:
            log.warning("drain period (%.0fs) over with %d request(s) in flight", seconds, left)
        else:
            log.info("drained: no request in flight")


class MetricsWsgi:
    """``GET /metrics``: this gateway process' metrics (``shared.metrics``), answered before
    routing (not an API route, not in the OpenAPI document). The reverse proxy does not pass
    it on (docker/nginx); Prometheus scrapes each gateway on the internal network."""

    def __init__(self, app: Any):
        self.app = app

    def __call__(self, environ: dict, start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/metrics" and environ.get("REQUEST_METHOD") in (
            "GET",
            "HEAD",
        ):
            body, content_type = exposition()
            start_response(
                "200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))]
            )
            return [body] if environ["REQUEST_METHOD"] == "GET" else []
        return self.app(environ, start_response)
