"""The gateway's route decorator: one place that parses, authenticates, validates, replays
idempotent POSTs and turns every error into the envelope.

    class ShopRoutes:
        @route("POST", "/api/v1/shops", body=ShopIn, status=201, auth=("member",),
               summary="Open a shop", tags=["shops"])
        def open_shop(self, req):
            return self.rpc("shop").open_shop(req.principal.sub, req.body.model_dump())

A handler gets ``req`` (``Req``: principal, body, query, path params, headers) and returns a
JSON-able value (sent with ``status``) or a werkzeug ``Response`` (images, HTML).
"""

from __future__ import annotations

import functools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nameko.web.handlers import HttpRequestHandler
from pydantic import BaseModel, ValidationError
from werkzeug.wrappers import Request, Response

from gateway import limits
from gateway.drain import DrainingWebServer, MetricsWsgi
from shared.errors import BadRequest, NotFound, Unauthorized, ValidationFailed, XiaopuError
from shared.idempotency import IDEM_KEY, client_key_problem, scoped_key
from shared.ids import new_id
from shared.logs import current_correlation_id, set_correlation_id
from shared.lru import LRU
from shared.metrics import observe_http
from shared.validation import field_errors, validated

log = logging.getLogger(__name__)


@dataclass
class RouteSpec:
    method: str
    path: str
    fn_name: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any
    status: int
    auth: tuple[str, ...] | None
    summary: str
    tags: list[str]
    idempotent: bool
    produces: str = "application/json"
    # a route that exists only under some configuration (e.g. the sandbox /pay): elsewhere it
    # answers 404 like an unknown path and is left out of the OpenAPI document
    when: Callable[[dict], bool] | None = None

    def exists(self, config: dict) -> bool:
        return self.when is None or bool(self.when(config))

    limit: str | None = None  # a gateway.ratelimit group: 429 past its address/global limit


ROUTES: list[RouteSpec] = []

# Every id column is at least a 32-bit integer; an id outside that range cannot exist, and
# passing it on would only make a database refuse it (PostgreSQL: "integer out of range").
MAX_ID = 2**31 - 1


def _check_ids(params: dict) -> None:
    for name, value in params.items():
        if isinstance(value, int) and not 0 <= value <= MAX_ID:
            raise NotFound(
                f"no {name.removesuffix('_id')} {value}", details={"field": name}, code="not_found"
            )


@dataclass
class Req:
    request: Request
    principal: Any
    body: Any
    query: Any
    params: dict
    idempotency_key: str | None
    extras: dict = field(default_factory=dict)

    @property
    def headers(self):
        return self.request.headers


def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False, default=_default)
    return Response(body, status=status, mimetype="application/json", headers=headers)


def _default(value):
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def error_response(exc: BaseException, request: Request | None = None) -> Response:
    if request is not None and limits.is_page_path(request.path):  # a page: HTML, not JSON
        status = exc.status if isinstance(exc, XiaopuError) else 500
        if status >= 500:
            log.error("page %s failed", request.path, exc_info=exc)
        return limits.html_error(422 if isinstance(exc, ValidationError) else status)
    if isinstance(exc, XiaopuError):
        if exc.status >= 500:
            log.error("%s: %s", exc.code, exc.message)
        return json_response(exc.envelope(), exc.status, getattr(exc, "headers", None))
    if isinstance(exc, ValidationError):  # a model built in a route, outside ``validated``
        return json_response(
            ValidationFailed("the request is invalid", details=field_errors(exc)).envelope(), 422
        )
    log.exception("unexpected error in the gateway", exc_info=exc)
    return json_response(
        {
            "error": {
                "code": "internal_error",
                "message": "something went wrong on our side",
                "details": None,
            }
        },
        500,
    )


class NoDelayWebServer(DrainingWebServer):
    """nameko's web server with TCP_NODELAY on every connection. Without it a response of a
    few tens of KB waits ~40 ms on the Nagle / delayed-ACK interaction (measured by the shop
    benchmark: 52 ms for a 33 KB page whose RPC took 6 ms). It drains on stop
    (``gateway.drain``) and answers ``GET /metrics`` (``shared.metrics``) before routing."""

    def process_request(self, sock, address):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # the client has already gone; the request will fail on its own
            pass
        return super().process_request(sock, address)

    def get_wsgi_app(self):
        return MetricsWsgi(limits.DeclaredWsgiApp(self))  # no werkzeug English error pages

    def get_wsgi_server(self, sock, wsgi_app, *args, **kwargs):
        server = super().get_wsgi_server(sock, wsgi_app, *args, **kwargs)
        server.url_length_limit = limits.Limits.from_config(self.container.config).max_url_bytes
        return server


class JsonHttpRequestHandler(HttpRequestHandler):
    """nameko's HTTP entrypoint, answering with the error envelope (nameko-examples' shape)."""

    server = NoDelayWebServer()

    def response_from_exception(self, exc):
        return error_response(exc)

    def handle_request(self, request):
        """nameko's, timed into ``xiaopu_http_*`` by route template; the request's id is made
        this connection's correlation id too, so the access line names it."""
        set_correlation_id(None)
        started = time.perf_counter()
        response = super().handle_request(request)
        observe_http(request.method, self.url, response.status_code, time.perf_counter() - started)
        set_correlation_id(response.headers.get("X-Request-Id"))
        return response

    def check_signature(self, args, kwargs):
        """nameko checks every request's arguments against the method (``inspect.getcallargs``,
        ~2% of the gateway's CPU on checkout and pay). A ``route`` entry takes
        ``(self, request, **params)`` — whatever the URL rule extracts fits it — so there is
        nothing to check; other ``http`` methods keep nameko's check."""
        fn = getattr(self.container.service_cls, self.method_name)
        if not getattr(fn, ACCEPTS_ANY_PARAMS, False):
            super().check_signature(args, kwargs)

    def stop(self):
        self.server.drain()  # stop accepting, let the requests in flight finish (gateway.drain)
        super().stop()


http = JsonHttpRequestHandler.decorator
ACCEPTS_ANY_PARAMS = "_xp_accepts_any_params"  # set on ``route`` entries


class IdempotencyCache:
    """Replays the first response to a repeated ``Idempotency-Key`` (per caller, method, path).

    Kept in the gateway's memory, bounded (``shared.lru.LRU``). A second request with a key that
    is still in flight waits for the first one's answer instead of running twice.
    """

    def __init__(self, size: int = 10000):
        self.size = size
        self._done: LRU[tuple, tuple[int, bytes, str]] = LRU(size)
        self._inflight: dict[tuple, threading.Event] = {}
        self._lock = threading.Lock()

    def begin(self, key: tuple) -> tuple[int, bytes, str] | None:
        """The stored answer to replay, or None: the caller runs the request (and must call
        ``finish``)."""
        while True:
            with self._lock:
                done = self._done.get(key)
                if done is not None:
                    return done
                waiter = self._inflight.get(key)
                if waiter is None:
                    self._inflight[key] = threading.Event()
                    return None
            waiter.wait(30)

    def finish(self, key: tuple, response: Response | None) -> None:
        with self._lock:
            if response is not None and response.status_code < 500:
                self._done.put(key, (response.status_code, response.get_data(), response.mimetype))
            event = self._inflight.pop(key, None)
        if event is not None:
            event.set()


IDEMPOTENCY = IdempotencyCache()


MUTATING = ("POST", "PUT", "PATCH", "DELETE")


def _request_key(service: Any, spec: RouteSpec, principal: Any, request: Request) -> str | None:
    """Every mutating request gets an idempotency key (``shared.idempotency``): the client's
    ``Idempotency-Key`` (400 when empty, over 200 characters or not printable) or one made up
    for this request, scoped to the caller, method and path. It goes to the service that owns
    the effect in the nameko context (``xp_idem``), so a retry, a redelivery or the same key
    through another gateway is recognised there. Returns the client's key (None if absent)."""
    if spec.method not in MUTATING:
        return None
    client = request.headers.get("Idempotency-Key")
    if client is not None:
        problem = client_key_problem(client)
        if problem is not None:
            raise BadRequest(problem, details={"header": "Idempotency-Key"})
    role, sub = (principal.role, str(principal.sub)) if principal else ("-", "-")
    scoped = scoped_key(role, sub, spec.method, request.path, client or f"gw:{new_id()}")
    worker_ctx = getattr(getattr(service, "deadline", None), "worker_ctx", None)
    if worker_ctx is not None:
        worker_ctx.data[IDEM_KEY] = scoped
    return client


def _parse_body(request: Request, model: type[BaseModel] | None):
    if model is None:
        return None
    raw = request.get_data(cache=True)
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}", code="malformed_json") from exc
    if not isinstance(data, dict):
        raise ValidationFailed(
            "the body must be a JSON object",
            details=[{"field": "body", "message": "expected an object"}],
        )
    return validated(model, data)


def _parse_query(request: Request, model: type[BaseModel] | None):
    if model is None:
        return None
    # an empty parameter (``?limit=``) is an absent one: the model's default applies
    return validated(model, {k: v for k, v in request.args.items() if v != ""})


def route(
    method: str,
    path: str,
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    auth: Sequence[str] | None = None,
    summary: str = "",
    tags: Sequence[str] = (),
    idempotent: bool | None = None,
    produces: str = "application/json",
    when: Callable[[dict], bool] | None = None,
    limit: str | None = None,
):
    idem = method in ("POST", "PUT") if idempotent is None else idempotent

    def deco(fn: Callable):
        spec = RouteSpec(
            method,
            path,
            fn.__name__,
            body,
            query,
            response,
            status,
            tuple(auth) if auth else None,
            summary or (fn.__doc__ or "").strip(),
            list(tags),
            idem,
            produces,
            when,
            limit,
        )
        ROUTES.append(spec)

        @functools.wraps(fn)
        def entry(self, request: Request, **params):
            key = None
            if not spec.exists(self.config):
                return json_response(
                    NotFound(
                        f"no route for {request.method} {request.path}", code="route_not_found"
                    ).envelope(),
                    404,
                )
            try:
                limits.Limits.from_config(self.config).check(request)  # 413, 400 (JSON depth)
                if spec.limit:
                    self.rate_limits.hit(spec.limit, self.client.address(request))
                principal = self.tokens.verify(request.headers.get("Authorization"))
                if spec.auth:
                    if principal is None:
                        raise Unauthorized(
                            "this endpoint needs a bearer token", code="missing_token"
                        )
                    principal.require(*spec.auth)
                idem_key = _request_key(self, spec, principal, request)
                if idem_key and spec.idempotent:
                    key = (
                        principal.role if principal else "-",
                        principal.sub if principal else "-",
                        method,
                        request.path,
                        idem_key,
                    )
                    cached = IDEMPOTENCY.begin(key)
                    if cached is not None:
                        key = None
                        code, data, mimetype = cached
                        return Response(
                            data,
                            status=code,
                            mimetype=mimetype,
                            headers={"Idempotent-Replayed": "true"},
                        )
                _check_ids(params)
                req = Req(
                    request,
                    principal,
                    _parse_body(request, spec.body),
                    _parse_query(request, spec.query),
                    params,
                    idem_key if spec.idempotent else None,
                )
                result = fn(self, req)
                if isinstance(result, Response):
                    resp = result
                elif spec.status == 204:
                    resp = Response(status=204)
                else:
                    resp = json_response(result, spec.status)
            except Exception as exc:  # every failure leaves as the envelope, never a trace
                resp = error_response(exc, request)
            if key is not None:
                IDEMPOTENCY.finish(key, resp)
            cid = current_correlation_id()
            if cid:
                resp.headers["X-Request-Id"] = cid
            return resp

        setattr(entry, ACCEPTS_ANY_PARAMS, True)
        return http(method, path)(entry)

    return deco
