"""RPC over HTTP between the gateway and a service, for the money path's two requests.

Issue 19 asked to measure serving checkout and pay over HTTP from orders, behind the gateway's
one door. The gateway keeps the door — auth, limits, validation, idempotency replay, the error
envelope — and forwards the same call it would have made over RabbitMQ to the service's
internal HTTP address instead: no broker in between, no request and reply queues. What a call
carries is what an AMQP RPC carries: the method, its arguments, and the nameko context data
(``xp_deadline``, ``xp_idem``, the call-id stack, the correlation id) in one header; the reply is
the RPC reply body (``{"result": …, "error": …}``, ``shared.rpc.encode_reply``), so a domain
error comes back as itself and anything else as ``UpstreamFailed``, through ``TimedCalls``.

In the service: ``@http_rpc`` beside ``@rpc`` on the methods the gateway calls this way; the
internal server listens on ``XIAOPU_HTTP_RPC_ADDRESS`` (empty: not at all; the methods stay
reachable over AMQP). Several instances of a service share the address (``SO_REUSEPORT``, as
``eventlet.listen`` sets it): the kernel spreads the gateway's connections over them.
Bind it to a private interface. A caller shows the door key (``X-Xp-Door-Key``:
``XIAOPU_HTTP_RPC_KEY``, by default a digest of the broker URI with its credentials), so only
those who may send RPCs through RabbitMQ may send them through the door (403 otherwise).

In the gateway: ``HttpRpcProxy("orders")`` reads ``XIAOPU_HTTP_RPC_<SERVICE>`` (a base URL;
empty: the gateway uses RabbitMQ). Connections are kept alive and reused, one request at a
time each.

The deadline holds as over AMQP: a request whose deadline has passed is refused before any work
(``deadline_exceeded``), the unit of work refuses to commit with less than the commit margin
left, and the gateway waits for the whole deadline — so a 503 still means it did not happen.
A service that is down refuses the connection: 503 at once (``the orders service is not
running``). A kept-alive connection the service closed in the meantime (it restarted) fails
before any reply byte: the call is sent once more on a new connection, which is safe because
nothing was read on the old one and the call carries its idempotency key.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import sys
import time
from logging import getLogger
from typing import Any
from urllib.parse import urlsplit

import eventlet
import kombu.serialization
from eventlet import greenio, wsgi
from eventlet.event import Event
from eventlet.green.http import client as green_client
from eventlet.wsgi import STATE_IDLE
from nameko.containers import ContainerBeingKilled
from nameko.exceptions import RemoteError, UnknownService, deserialize
from nameko.extensions import DependencyProvider
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol, WebServer, parse_address
from werkzeug.routing import Rule
from werkzeug.wrappers import Response

from shared.errors import ServiceUnavailable
from shared.rpc import SignatureBoundOnce, deadline_of, encode_reply, refuse_late_start

ADDRESS_KEY = "XIAOPU_HTTP_RPC_ADDRESS"
CONTEXT_HEADER = "X-Xp-Context"
KEY_HEADER = "X-Xp-Door-Key"
KEY_CONFIG = "XIAOPU_HTTP_RPC_KEY"
RETRY_HEADER = "X-Xp-Retry"  # refused before any work (a stopping instance): send it again
RETRIES = 3
JSON = "application/json"
KEEP_CONNECTIONS = 20


def door_key(config: dict) -> str:
    """What a caller shows to be let through the door: ``XIAOPU_HTTP_RPC_KEY``, or by default
    a digest of the broker URI with its credentials — whoever may send RPCs through RabbitMQ
    may send them through the door, and nobody else who merely reaches the address."""
    configured = str(config.get(KEY_CONFIG) or "").strip()
    if configured:
        return configured
    uri = str(config.get("AMQP_URI") or "")
    return hashlib.sha256(f"xiaopu-http-rpc:{uri}".encode()).hexdigest()


def address_config(service: str) -> str:
    """The gateway's configuration key for a service's internal HTTP address."""
    return f"XIAOPU_HTTP_RPC_{service.upper()}"


class InternalWebServer(WebServer):
    """nameko's ``WebServer`` on the internal address, taking the caller's context data from
    its header. No address configured: it does not listen.

    It keeps track of its connections so that stopping and dying close them, as the end of a
    process would: a stopping instance first stops accepting (the kernel sends new connections
    to the other instances on the address) and answers requests on its kept-alive connections
    with ``RETRY_HEADER`` — refused before any work, so the caller sends them again on a new
    connection —, then closes idle connections, giving busy ones ``DRAIN_SECONDS`` to write
    their reply; a killed one closes everything at once."""

    DRAIN_SECONDS = 2.0

    def __init__(self):
        super().__init__()
        self.connections: dict[Any, list] = {}
        self.accepted = 0  # connections accepted since start
        self.stopping = False
        self.key = ""  # door_key(config), at setup

    @property
    def address(self) -> str:
        return str(self.container.config.get(ADDRESS_KEY) or "").strip()

    @property
    def bind_addr(self):
        return parse_address(self.address)

    def setup(self):
        super().setup()
        self.key = door_key(self.container.config)

    def start(self):
        if self.address:
            super().start()

    def get_wsgi_server(self, sock, wsgi_app, protocol=HttpOnlyProtocol, debug=False):
        """eventlet's server without its access log: a line per internal call is noise in the
        service's log (the gateway logs the request) and 2% of the door's CPU."""
        return wsgi.Server(
            sock,
            sock.getsockname(),
            wsgi_app,
            protocol=protocol,
            debug=debug,
            log=getLogger(__name__),
            log_output=False,
        )

    def process_request(self, sock, address):
        state = [address, sock, STATE_IDLE]  # eventlet.wsgi updates state[2] per request
        self.connections[address] = state
        self.accepted += 1
        try:
            self._serv.process_request(state)
        finally:
            self.connections.pop(address, None)
            greenio.shutdown_safe(sock)
            sock.close()

    def stop_accepting(self) -> None:
        """Close the listening socket (new connections go to the other instances)."""
        self.stopping = True
        self._is_accepting = False
        accepting: Any = getattr(self, "_gt", None)  # nameko's, untyped
        listening: Any = getattr(self, "_sock", None)
        self._gt = self._sock = None
        if accepting is not None:
            accepting.kill()
        if listening is not None:
            listening.close()

    def _close(self, idle_only: bool) -> None:
        for state in list(self.connections.values()):
            if not idle_only or state[2] == STATE_IDLE:
                greenio.shutdown_safe(state[1])

    def stop(self):
        self.stop_accepting()
        self._close(idle_only=True)
        give_up = time.monotonic() + self.DRAIN_SECONDS
        while any(s[2] != STATE_IDLE for s in self.connections.values()):
            if time.monotonic() > give_up:
                break
            eventlet.sleep(0.01)  # a reply being written: the callers' answers
        self._close(idle_only=False)
        super(WebServer, self).stop()  # ProviderCollector: every entrypoint is gone

    def kill(self):
        self.stop_accepting()
        self._close(idle_only=False)

    def context_data_from_headers(self, request):
        raw = request.headers.get(CONTEXT_HEADER)
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


def _reply(result: Any, exc_info: Any) -> tuple[bytes, Any, Any]:
    body, _ctype, _encoding, result, exc_info = encode_reply(result, exc_info, JSON)
    if isinstance(body, str):
        body = body.encode("utf-8")
    return body, result, exc_info


class HttpRpc(SignatureBoundOnce, HttpRequestHandler):
    """An RPC entrypoint reached over HTTP: ``POST /rpc/<method>`` with ``{"args", "kwargs"}``,
    answered with the RPC reply body."""

    server = InternalWebServer()

    def __init__(self, **kwargs):
        super().__init__("POST", "", **kwargs)

    def get_url_rule(self):
        return Rule(f"/rpc/{self.method_name}", methods=["POST"])

    def get_entrypoint_parameters(self, request):
        call = kombu.serialization.loads(request.get_data(), JSON, "utf-8")
        return tuple(call.get("args") or ()), dict(call.get("kwargs") or {})

    def stop(self):
        self.server.stop_accepting()  # first, before nameko waits for the running workers
        super().stop()

    def handle_request(self, request):
        request.shallow = False
        shown = request.headers.get(KEY_HEADER, "")
        if not hmac.compare_digest(shown.encode(), self.server.key.encode()):
            return Response("not a caller of this door\n", status=403)
        if self.server.stopping:
            return self._refused()
        try:
            context_data = self.server.context_data_from_headers(request)
            refuse_late_start(self.method_name, deadline_of(context_data))
            args, kwargs = self.get_entrypoint_parameters(request)
            self.check_signature(args, kwargs)
            event = Event()
            self.container.spawn_worker(
                self,
                args,
                kwargs,
                context_data=context_data,
                handle_result=lambda ctx, result, exc_info: self._handled(event, result, exc_info),
            )
            body = event.wait()
        except ContainerBeingKilled:
            return self._refused()
        except Exception:
            body, _result, _exc_info = _reply(None, sys.exc_info())
        return Response(body, status=200, content_type=JSON)

    def _refused(self) -> Response:
        """This instance is stopping: nothing was done; the caller retries elsewhere."""
        try:
            raise ServiceUnavailable(f"this {self.container.service_name} instance is stopping")
        except ServiceUnavailable:
            body, _result, _exc_info = _reply(None, sys.exc_info())
        return Response(
            body, status=200, content_type=JSON, headers={RETRY_HEADER: "1", "Connection": "close"}
        )

    @staticmethod
    def _handled(event, result, exc_info):
        body, result, exc_info = _reply(result, exc_info)
        event.send(body)
        return result, exc_info


http_rpc = HttpRpc.decorator


class _Connections:
    """Kept-alive green connections to one service, one request at a time each."""

    def __init__(self, base_url: str, keep: int = KEEP_CONNECTIONS):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.keep = keep
        self.free: list[http.client.HTTPConnection] = []

    def new(self) -> http.client.HTTPConnection:
        return green_client.HTTPConnection(self.host, self.port)

    def acquire(self) -> tuple[http.client.HTTPConnection, bool]:
        if self.free:
            return self.free.pop(), True
        return self.new(), False

    def release(self, conn: http.client.HTTPConnection) -> None:
        if len(self.free) < self.keep:
            self.free.append(conn)
        else:
            conn.close()


_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
_POOLS: dict[str, _Connections] = {}


def connections(base_url: str, keep: int = KEEP_CONNECTIONS) -> _Connections:
    """The process's kept-alive connections to ``base_url``: up to ``keep`` are kept — the
    caller's worker count, so that a burst of calls does not open and close connections
    (handshakes, sockets in TIME_WAIT) but reuses them."""
    found = _POOLS.get(base_url)
    if found is None:
        found = _POOLS[base_url] = _Connections(base_url, keep)
    found.keep = max(found.keep, keep)
    return found


class HttpMethods:
    """``proxy.checkout(...)``: the call over HTTP with this worker's context data."""

    def __init__(self, service: str, pool: _Connections, worker_ctx: Any, key: str):
        self._service, self._pool, self._worker_ctx, self._key = service, pool, worker_ctx, key

    def __getattr__(self, method: str):
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(method, args, kwargs)

        return call

    def _headers(self) -> dict[str, str]:
        ctx = self._worker_ctx
        data = ctx.context_data if ctx is not None else {}  # with the call-id stack
        return {
            "Content-Type": JSON,
            KEY_HEADER: self._key,
            CONTEXT_HEADER: json.dumps(data, separators=(",", ":")),
        }

    def _call(self, method: str, args: tuple, kwargs: dict) -> Any:
        # kombu's JSON, as an AMQP RPC's body: dates, decimals and UUIDs travel the same way
        _ctype, _encoding, text = kombu.serialization.dumps(
            {"args": args, "kwargs": kwargs}, "json"
        )
        # bytes: http.client sends headers and a bytes body in one write (a str body in two)
        body = text.encode("utf-8") if isinstance(text, str) else text
        headers = self._headers()
        path = f"/rpc/{method}"
        refused = 0
        fresh = False  # after a refusal: a new connection, never another kept one
        while True:
            conn, reused = (self._pool.new(), False) if fresh else self._pool.acquire()
            try:
                conn.request("POST", path, body, headers)
                response = conn.getresponse()
                data = response.read()
            except ConnectionRefusedError:
                conn.close()
                raise UnknownService(self._service) from None
            except _STALE:
                # closed before any reply byte: a kept-alive connection the service closed
                # (it restarted), or a new one it dropped from its backlog as it stopped
                conn.close()
                if not reused:
                    refused += 1
                if refused <= RETRIES:
                    continue
                raise UnknownService(self._service) from None
            except BaseException:
                conn.close()  # a timeout mid-call: this connection's reply is not ours to read
                raise
            if response.getheader(RETRY_HEADER) and refused < RETRIES:
                # a stopping instance refused it before any work. The other kept connections
                # may lead to the same instance; a new one reaches a live one (the stopping
                # instance closed its listening socket first)
                conn.close()
                refused += 1
                fresh = True
                continue
            if response.will_close:
                conn.close()
            else:
                self._pool.release(conn)
            break
        if response.status != 200:  # not an answer of the method: no such entrypoint, a proxy
            raise RemoteError("HttpStatus", f"POST {path}: HTTP {response.status}")
        reply = kombu.serialization.loads(data, JSON, "utf-8")
        if reply.get("error"):
            raise deserialize(reply["error"])
        return reply.get("result")


class HttpRpcProxy(DependencyProvider):
    """The gateway's client of one service over HTTP (``XIAOPU_HTTP_RPC_<SERVICE>``); None
    when it is not configured (the caller uses RabbitMQ)."""

    def __init__(self, service: str):
        self.service = service

    def setup(self):
        url = str(self.container.config.get(address_config(self.service)) or "").strip()
        workers = int(getattr(self.container, "max_workers", 0) or KEEP_CONNECTIONS)
        self.pool = connections(url, workers) if url else None
        self.key = door_key(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> HttpMethods | None:
        if self.pool is None:
            return None
        return HttpMethods(self.service, self.pool, worker_ctx, self.key)
