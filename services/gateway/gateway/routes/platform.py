"""Health, OpenAPI, the test-mode clock, and the 404/405 answers for unknown routes and methods."""

from __future__ import annotations

import time

import eventlet
from pydantic import BaseModel, Field, field_validator

from gateway import limits
from gateway.api import ROUTES, http, json_response, route
from gateway.openapi import openapi_document
from shared import clock
from shared.clocksync import sync_seconds
from shared.config import SERVICES, test_mode
from shared.contracts.events import ClockMoved
from shared.db import envelope
from shared.errors import NotFound, XiaopuError


class ClockIn(BaseModel):
    now: str | None = Field(None, description="ISO-8601 instant; null resets to real time")

    @field_validator("now")
    @classmethod
    def _instant(cls, value):
        if value is not None:
            try:
                clock.parse(value)
            except (TypeError, ValueError, OverflowError):
                raise ValueError("now must be an ISO-8601 instant") from None
        return value


def events_summary(detail: dict) -> dict:
    """Per consumer queue of every service: retrying and parked events, and each service's
    oldest unpublished outbox row (seconds), from the services' own health answers."""
    queues: dict = {}
    outbox: dict = {}
    for name, info in detail.items():
        if isinstance(info.get("queues"), dict):
            queues.update(info["queues"])
        if "outbox_oldest_age_seconds" in info:
            outbox[name] = info["outbox_oldest_age_seconds"]
    return {
        "retrying": sum(q.get("retrying", 0) for q in queues.values()),
        "parked": sum(q.get("parked", 0) for q in queues.values()),
        "queues": queues,
        "outbox_oldest_age_seconds": outbox,
    }


class PlatformRoutes:
    @route(
        "GET",
        "/api/v1/health",
        summary="Health of the gateway and every service",
        tags=["platform"],
    )
    def health(self, req):
        def check(service):
            try:
                answer = self.rpc(service, timeout=self.health_timeout).health()
            except XiaopuError as exc:
                return service, "down", {"error": exc.message}
            status = "ok" if answer.get("status") == "ok" else "degraded"
            if getattr(self, f"{service}_http", None) is not None:  # its HTTP door too
                try:
                    self.rpc(service, timeout=self.health_timeout, over_http=True).echo("health")
                    answer = {**answer, "http_door": "ok"}
                except XiaopuError as exc:
                    status, answer = "degraded", {**answer, "http_door": exc.message}
            return service, status, answer

        pool = eventlet.GreenPool(len(SERVICES))
        results = list(pool.imap(check, SERVICES))
        services = {name: status for name, status, _ in results}
        detail = {name: info for name, _, info in results}
        healthy = all(s == "ok" for s in services.values())
        return json_response(
            {
                "status": "ok" if healthy else "degraded",
                "services": services,
                "detail": detail,
                "events": events_summary(detail),
                # every instance that sent a heartbeat lately (shared/liveness.py)
                "instances": self.instance_registry.instances(SERVICES + ("gateway",)),
            },
            200 if healthy else 503,
        )

    @route("GET", "/api/v1/openapi.json", summary="This API's OpenAPI document", tags=["platform"])
    def openapi(self, req):
        return openapi_document(config=self.config)

    @route(
        "POST",
        "/api/v1/admin/clock",
        body=ClockIn,
        auth=("admin",),
        idempotent=False,
        summary="Move the platform clock for every service (test mode only)",
        tags=["admin"],
    )
    def set_clock(self, req):
        """One move for every instance (shared.clocksync): stored in Redis, broadcast, applied
        here and through each service's RPC; answered once every live instance confirmed it."""
        if not test_mode(self.config):
            raise NotFound("no such endpoint (test mode is off)", code="route_not_found")
        now = req.body.now
        offset = 0.0 if now is None else (clock.parse(now) - clock.real_now()).total_seconds()
        version = time.time_ns()
        move = ClockMoved(offset_seconds=offset, version=version, now=now)
        stored = self.clock_sync.save(offset, version) if self.clock_sync is not None else False
        self.dispatch_event("clock_moved", envelope("clock_moved", move.model_dump(), "gateway"))
        clock.apply(offset, version)
        answers = {s: self.rpc(s).set_clock(now, offset, version) for s in SERVICES}
        deadline = time.monotonic() + sync_seconds(self.config)
        late = self.instance_registry.unconfirmed_clock(SERVICES + ("gateway",), version)
        while late and time.monotonic() < deadline:
            eventlet.sleep(0.05)
            late = self.instance_registry.unconfirmed_clock(SERVICES + ("gateway",), version)
        return {
            "now": answers[SERVICES[0]]["now"],
            "version": version,
            "services": answers,
            "stored": stored,  # False: Redis is away, a restarted instance will not follow
            "unconfirmed": late,  # live instances that did not show the move in time
        }

    @route(
        "GET",
        "/api/v1/echo",
        summary="A bare gateway → RPC round trip (benchmark floor)",
        tags=["platform"],
    )
    def echo(self, req):
        return {"echo": self.rpc("catalog").echo(req.request.args.get("q", "ping"))}

    @route(
        "GET",
        "/api/v1/echo/local",
        summary="The echo answered by the gateway alone, no RPC (benchmark: the price of a hop)",
        tags=["platform"],
    )
    def echo_local(self, req):
        return {"echo": req.request.args.get("q", "ping")}

    @route(
        "GET",
        "/api/v1/echo/orders",
        summary="The echo answered by orders over its HTTP door, the way checkout and pay "
        "reach it (benchmark: the price of that hop)",
        tags=["platform"],
    )
    def echo_orders(self, req):
        return {"echo": self.rpc("orders", over_http=True).echo(req.request.args.get("q", "ping"))}

    @http("GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS", "/<path:path>")
    def not_found(self, request, path):
        allowed = limits.allowed_methods(request.path, ROUTES)
        if allowed:  # a known path, an undeclared method
            headers = {"Allow": ", ".join(allowed)}
            if limits.is_page_path(request.path):
                return limits.html_error(405, headers)
            message = f"{request.method} is not allowed here; allowed: {', '.join(allowed)}"
            return json_response(
                {"error": {"code": "method_not_allowed", "message": message, "details": allowed}},
                405,
                headers,
            )
        if limits.is_page_path(request.path):
            return limits.html_error(404)
        return json_response(
            NotFound(f"no route for {request.method} /{path}", code="route_not_found").envelope(),
            404,
        )

    @http("POST,PUT,PATCH,DELETE,OPTIONS", "/")
    def home_page_methods(self, request):
        """``/`` is the home page (GET, gateway.web): any other method is an HTML 405."""
        return limits.html_error(405, {"Allow": "GET, HEAD"})
