"""RPC between services with a deadline that travels with the call.

The gateway gives every request a deadline (``XIAOPU_RPC_TIMEOUT``, or a longer one for the
few slow admin routes). It travels in the nameko context headers (``xp_deadline``, epoch
seconds); a service that calls another one waits at most until that deadline minus a margin
(``HOP_MARGIN_SECONDS``), so an inner call always gives up before its caller does and the
caller can still answer 503 with the envelope.

In a service::

    class ShopService(PlatformRpc):          # PlatformRpc declares ``deadline = Deadline()``
        catalog_rpc = RpcProxy("catalog")

        @rpc
        def pick(self, ...):
            product = self.deadline.call(self.catalog_rpc, "catalog").get_product(pid)

A service honours the deadline it is given: its entrypoints are ``shared.rpc.rpc`` (not
nameko's), which refuses a request whose deadline has already passed before any work starts
(ServiceUnavailable ``deadline_exceeded``, replied like any error), and its unit of work
refuses to COMMIT when less than ``XIAOPU_COMMIT_MARGIN_SECONDS`` (0.5 s) of it is left
(``shared.db``). The gateway waits for the whole deadline, so a 503 for a timeout means the
effect was not committed and will not be: the retry with the same Idempotency-Key is safe.

Errors: a call that runs out of time, or a service that is not running, is
``ServiceUnavailable`` (503, ``details.service``); an unexpected failure inside the callee is
``UpstreamFailed`` (500 with the service named); domain errors (NotFound, Conflict, …) pass
through as themselves.

Every call is timed into ``xiaopu_rpc_client_duration_seconds`` (``shared.metrics``) by caller,
service, method and outcome.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import eventlet
from nameko.exceptions import RemoteError, UnknownService
from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc

from shared.errors import ServiceUnavailable, XiaopuError
from shared.metrics import observe_rpc

DEADLINE_KEY = "xp_deadline"
DEFAULT_TIMEOUT_SECONDS = 5.0
HOP_MARGIN_SECONDS = 0.25
COMMIT_MARGIN_SECONDS = 0.5
IDEM_KEY = "xp_idem"  # shared.idempotency.IDEM_KEY (not imported: that module needs SQLAlchemy)


class UpstreamFailed(XiaopuError):
    """A service failed in a way it did not mean to (its bug, not the caller's input)."""

    status = 500
    code = "internal_error"


def default_timeout(config: dict) -> float:
    return float(config.get("XIAOPU_RPC_TIMEOUT", DEFAULT_TIMEOUT_SECONDS))


def commit_margin(config: dict) -> float:
    return float(config.get("XIAOPU_COMMIT_MARGIN_SECONDS", COMMIT_MARGIN_SECONDS))


def deadline_of(data: dict | None) -> float | None:
    """The caller's deadline (epoch seconds) in a worker's context data, or None."""
    raw = data.get(DEADLINE_KEY) if data is not None else None
    try:
        return float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def deadline_exceeded(message: str) -> ServiceUnavailable:
    return ServiceUnavailable(message, code="deadline_exceeded")


def commit_too_late(at: float | None, margin: float) -> None:
    """Raise ``deadline_exceeded`` when less than ``margin`` seconds are left before ``at``,
    the worker's deadline (None — a timer, an event, a test —: always in time)."""
    if at is not None and at - time.time() < margin:
        raise deadline_exceeded(
            "the caller's deadline is (nearly) over: nothing was committed; retry with the same "
            "Idempotency-Key"
        )


class DeadlineRpc(Rpc):
    """nameko's RPC entrypoint, refusing a request whose deadline has already passed before
    anything runs: it answers ServiceUnavailable ``deadline_exceeded`` as a normal error reply
    (so a caller still waiting is told at once) and acknowledges the message."""

    def handle_message(self, body, message):
        at = deadline_of(self.unpack_message_headers(message))
        if at is not None and at <= time.time():
            try:
                raise deadline_exceeded(
                    f"{self.method_name}: the caller's deadline passed before the work started; "
                    "nothing was done"
                )
            except ServiceUnavailable:
                self.rpc_consumer.handle_result(message, None, sys.exc_info())
            return
        super().handle_message(body, message)


rpc = DeadlineRpc.decorator


class DeadlineHandle:
    """What a worker sees as ``self.deadline``."""

    def __init__(self, worker_ctx: Any, fallback: float):
        self.worker_ctx = worker_ctx
        self.fallback = fallback
        raw = worker_ctx.data.get(DEADLINE_KEY) if worker_ctx is not None else None
        try:
            self.at: float | None = float(raw) if raw is not None else None
        except (TypeError, ValueError):
            self.at = None

    def remaining(self) -> float | None:
        """Seconds left before the caller gives up (None: no caller deadline)."""
        return None if self.at is None else self.at - time.time()

    def expired(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0

    def budget(self, timeout: float | None = None) -> float:
        """How long an inner call may take: its own timeout, and always less than what the
        caller has left."""
        wanted = self.fallback if timeout is None else float(timeout)
        left = self.remaining()
        if left is not None:
            wanted = min(wanted, left - HOP_MARGIN_SECONDS)
        return wanted

    def call(
        self, proxy: Any, service: str, timeout: float | None = None, idem: str | None = None
    ) -> "TimedCalls":
        """Calls to ``service`` within the deadline. The idempotency key this worker received
        is not passed on; ``idem`` gives the callee one of its own (``idempotency.derive``)."""
        return TimedCalls(proxy, service, lambda: self.budget(timeout), self.worker_ctx, idem)


class TimedCalls:
    """``TimedCalls(proxy, "catalog", budget).get_product(7)``: the call with a deadline."""

    def __init__(
        self,
        proxy: Any,
        service: str,
        budget: Callable[[], float],
        worker_ctx: Any = None,
        idem: str | None = None,
    ):
        self._proxy = proxy
        self._service = service
        self._budget = budget
        self._worker_ctx = worker_ctx
        self._idem = idem

    def __getattr__(self, method: str) -> Callable[..., Any]:
        target = getattr(self._proxy, method)
        service = self._service

        def call(*args: Any, **kwargs: Any) -> Any:
            seconds = self._budget()
            if seconds <= 0:
                raise ServiceUnavailable(
                    f"no time left to ask the {service} service (the caller's deadline passed)",
                    details={"service": service},
                    code="deadline_exceeded",
                )
            data = self._worker_ctx.data if self._worker_ctx is not None else None
            previous = data.get(DEADLINE_KEY) if data is not None else None
            own_key = data.pop(IDEM_KEY, None) if data is not None else None
            if data is not None:  # the callee sees exactly how long we will wait for it
                data[DEADLINE_KEY] = time.time() + seconds
                if self._idem:
                    data[IDEM_KEY] = self._idem
            started, outcome = time.perf_counter(), "failed"
            try:
                with eventlet.Timeout(seconds):
                    answer = target(*args, **kwargs)
                outcome = "ok"
                return answer
            except XiaopuError:  # a domain error the callee answered on purpose
                outcome = "error"
                raise
            except eventlet.Timeout:
                outcome = "timeout"
                raise ServiceUnavailable(
                    f"the {service} service did not answer within {seconds:.3g}s",
                    details={"service": service},
                ) from None
            except UnknownService:
                outcome = "unavailable"
                raise ServiceUnavailable(
                    f"the {service} service is not running", details={"service": service}
                ) from None
            except RemoteError as exc:  # not a domain error: a failure inside the service
                raise UpstreamFailed(
                    f"the {service} service failed ({exc.exc_type})", details={"service": service}
                ) from exc
            finally:
                caller = getattr(self._worker_ctx, "service_name", None) or "standalone"
                observe_rpc(caller, service, method, outcome, time.perf_counter() - started)
                if data is not None:
                    if previous is None:
                        data.pop(DEADLINE_KEY, None)
                    else:
                        data[DEADLINE_KEY] = previous
                    data.pop(IDEM_KEY, None)
                    if own_key is not None:
                        data[IDEM_KEY] = own_key

        return call


class Deadline(DependencyProvider):
    """``self.deadline`` in every service (declared once, on ``PlatformRpc``)."""

    def get_dependency(self, worker_ctx: Any) -> DeadlineHandle:
        return DeadlineHandle(worker_ctx, default_timeout(self.container.config))
