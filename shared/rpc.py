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

How requests and replies are published (``RpcPublisher``, every process that imports this module:
all services and the gateway). nameko 2.14's stock ``Publisher`` asks the broker to confirm every
RPC request and reply (``basic_publish_confirm``: a round trip to RabbitMQ before the worker goes
on) and builds a new kombu ``Connection`` object for each publish to find its producer pool;
its ``Responder`` serialises each reply twice (a trial ``dumps`` of the result, then the real
one). Ours, for RPC only:

* no publisher confirms and transient messages (``delivery_mode`` 1): an RPC is answered or
  times out, and the caller's deadline turns a lost request or reply into 503 — nothing is
  persisted for a caller that stopped waiting. What we give up: nameko detects a call to a
  service that never declared its queue (``UnknownService``) only through the confirm that
  follows a ``mandatory`` publish, so ``mandatory`` is off too and such a call waits for its
  deadline (503 ``the … service did not answer``). The ``rpc-<service>`` queues are durable, so
  once a service has run this only differs on a broker that never saw it. A reply lost after the
  callee committed is a 503 for a done effect; the Idempotency-Key retry answers the stored
  outcome, as for any reply lost in flight;
* producers kept bound to a channel of their own connection (``BoundProducers``): a publish
  takes one and builds nothing (kombu's pool unbinds a producer on release and revives it on
  the next acquire); only after a broken connection does a publish go through kombu's pool and
  its retrying ``ensure``;
* a reply is serialised once: the payload is encoded, and the already encoded body published.

Events stay confirmed: the outbox relay (``shared.outbox``) publishes a batch and waits for the
broker's confirms once per batch; retries and parking (``shared.events``) keep nameko's
confirmed publisher.
"""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable
from typing import Any

import eventlet
import kombu.serialization
from kombu import Connection
from kombu.pools import producers
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_TRANSPORT_OPTIONS,
    LOGIN_METHOD_CONFIG_KEY,
)
from nameko.exceptions import (
    IncorrectSignature,
    RemoteError,
    UnknownService,
    UnserializableValueError,
    serialize,
)
from nameko.extensions import DependencyProvider
from nameko.rpc import MethodProxy, Rpc, RpcConsumer, get_rpc_exchange

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


def refuse_late_start(method_name: str, at: float | None) -> None:
    """Raise ``deadline_exceeded`` when the caller's deadline ``at`` has already passed before
    ``method_name`` started (an entrypoint's first check, over AMQP or HTTP)."""
    if at is not None and at <= time.time():
        raise deadline_exceeded(
            f"{method_name}: the caller's deadline passed before the work started; nothing was done"
        )


def commit_too_late(at: float | None, margin: float) -> None:
    """Raise ``deadline_exceeded`` when less than ``margin`` seconds are left before ``at``,
    the worker's deadline (None — a timer, an event, a test —: always in time)."""
    if at is not None and at - time.time() < margin:
        raise deadline_exceeded(
            "the caller's deadline is (nearly) over: nothing was committed; retry with the same "
            "Idempotency-Key"
        )


TRANSIENT = 1  # AMQP delivery mode: not written to disk by the broker

_POOLS: dict[tuple, Any] = {}


def producer_pool(amqp_uri: str, confirms: bool, ssl: Any = None, login_method: Any = None):
    """The process's producer pool for this broker and confirm mode. The kombu ``Connection``
    that keys it is built once, with its own transport options (nameko's ``Publisher`` mutates
    one class-level dict for all of them)."""
    key = (amqp_uri, confirms, repr(ssl), login_method)
    pool = _POOLS.get(key)
    if pool is None:
        options = {**DEFAULT_TRANSPORT_OPTIONS, "confirm_publish": confirms}
        conn = Connection(amqp_uri, transport_options=options, ssl=ssl, login_method=login_method)
        pool = _POOLS[key] = producers[conn]
    return pool


class BoundProducers:
    """Producers kept bound to a channel of their own connection, for RPC publishes.

    kombu's pool (``producer_pool``) unbinds a producer when it is released: the next acquire
    takes a connection from the connection pool, revives the producer on its channel and binds
    a copy of its exchange — about a quarter of an RPC publish's CPU (py-spy of the catalog
    answering echoes). These stay bound: acquiring one is a ``list.pop`` (green threads switch
    only on I/O, so the list needs no lock). A producer whose publish raised is closed, never
    reused. At most ``keep`` are kept; more are made while more publishes are in flight at once
    and closed as they come back."""

    def __init__(self, amqp_uri: str, ssl: Any = None, login_method: Any = None, keep: int = 10):
        self.amqp_uri, self.ssl, self.login_method, self.keep = amqp_uri, ssl, login_method, keep
        self.free: list[Any] = []

    def acquire(self) -> Any:
        if self.free:
            return self.free.pop()
        options = {**DEFAULT_TRANSPORT_OPTIONS, "confirm_publish": False}
        conn = Connection(
            self.amqp_uri, transport_options=options, ssl=self.ssl, login_method=self.login_method
        )
        return conn.Producer()

    def release(self, producer: Any) -> None:
        if len(self.free) < self.keep:
            self.free.append(producer)
        else:
            self.discard(producer)

    @staticmethod
    def discard(producer: Any) -> None:
        try:
            producer.connection.close()
        except Exception:  # already broken: nothing to give back
            pass


_BOUND: dict[tuple, BoundProducers] = {}


def bound_producers(amqp_uri: str, ssl: Any = None, login_method: Any = None) -> BoundProducers:
    """The process's ``BoundProducers`` for this broker (RPC publishes: no confirms)."""
    key = (amqp_uri, repr(ssl), login_method)
    found = _BOUND.get(key)
    if found is None:
        found = _BOUND[key] = BoundProducers(amqp_uri, ssl, login_method)
    return found


class RpcPublisher(Publisher):
    """nameko's ``Publisher`` for RPC requests and replies: no confirms, not mandatory,
    transient, a pooled producer (module docstring)."""

    use_confirms = False
    mandatory = False
    delivery_mode = TRANSIENT

    def publish(self, payload, **kwargs):
        headers = dict(self.publish_kwargs.get("headers", {}))
        headers.update(kwargs.pop("headers", {}))
        headers.update(kwargs.pop("extra_headers", {}))
        # nameko's MethodProxy asks for ``mandatory``; without confirms its basic.return would
        # never be waited for (and nameko warns): the deadline answers an unroutable call
        for unused in ("mandatory", "use_confirms", "transport_options"):
            kwargs.pop(unused, None)
        declare = [*self.declare, *kwargs.pop("declare", ())]
        options = {
            "delivery_mode": self.delivery_mode,
            "priority": self.priority,
            "expiration": self.expiration,
            "serializer": self.serializer,
            "compression": self.compression,
            "retry": self.retry,
            "retry_policy": self.retry_policy,
            **{k: v for k, v in self.publish_kwargs.items() if k != "headers"},
            **kwargs,
        }
        # First straight onto a producer kept bound to its channel (``BoundProducers``), no
        # kombu retrying path (``ensure`` wraps, revives and re-reads the retry policy on every
        # publish — about a sixth of the gateway's CPU per request). A broken connection or
        # channel closes that producer and takes kombu's pool with ``ensure``: the same retries
        # as before, from a reconnect on (a publish that failed may have reached the broker or
        # not, as under ``ensure``: requests carry their idempotency key, a reply finds no
        # waiting caller twice).
        bound = bound_producers(self.amqp_uri, self.ssl, self.login_method)
        producer = bound.acquire()
        conn = producer.connection
        try:
            producer.publish(
                payload, headers=headers, declare=declare, **{**options, "retry": False}
            )
        except conn.recoverable_connection_errors + conn.recoverable_channel_errors:
            bound.discard(producer)
        except BaseException:
            bound.discard(producer)
            raise
        else:
            bound.release(producer)
            return
        pool = producer_pool(self.amqp_uri, False, self.ssl, self.login_method)
        with pool.acquire(block=True) as pooled:
            pooled.publish(payload, headers=headers, declare=declare, **options)


# Every RPC request of this process (services' and the gateway's ``RpcProxy``, standalone
# proxies in tests) goes through ``RpcPublisher``: nameko builds one ``MethodProxy`` per call and
# reads its publisher class from this attribute, the hook nameko offers for it.
MethodProxy.publisher_cls = RpcPublisher


def encode_reply(result: Any, exc_info: Any, content_type: str) -> tuple[bytes, str, str, Any, Any]:
    """The reply, encoded once in the request's own serialiser: (body, content type, content
    encoding, result, exc_info). A result that cannot be serialised becomes nameko's
    ``UnserializableValueError`` reply, with result None and ``exc_info`` the serialisation
    failure (the worker logs it), as nameko's ``Responder`` does."""
    serializer = kombu.serialization.registry.type_to_name[content_type]
    error = serialize(exc_info[1]) if exc_info is not None else None
    try:
        ctype, encoding, body = kombu.serialization.dumps(
            {"result": result, "error": error}, serializer
        )
    except Exception:
        exc_info = sys.exc_info()
        error = serialize(UnserializableValueError(result))
        result = None
        ctype, encoding, body = kombu.serialization.dumps(
            {"result": None, "error": error}, serializer
        )
    return body, ctype, encoding, result, exc_info


class ReplyingRpcConsumer(RpcConsumer):
    """nameko's ``RpcConsumer`` whose replies are encoded once and published without confirms
    on a pooled producer (nameko's ``Responder`` serialises twice and confirms)."""

    def setup(self):
        super().setup()
        config = self.container.config
        self.exchange = get_rpc_exchange(config)
        self.publisher = RpcPublisher(
            config[AMQP_URI_CONFIG_KEY],
            ssl=config.get(AMQP_SSL_CONFIG_KEY),
            login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
        )

    def handle_result(self, message, result, exc_info):
        body, ctype, encoding, result, exc_info = encode_reply(
            result, exc_info, message.properties["content_type"]
        )
        self.publisher.publish(
            body,
            content_type=ctype,
            content_encoding=encoding,
            exchange=self.exchange,
            routing_key=message.properties["reply_to"],
            correlation_id=message.properties.get("correlation_id"),
        )
        self.queue_consumer.ack_message(message)
        return result, exc_info


class SignatureBoundOnce:
    """For an entrypoint (``DeadlineRpc``, ``shared.httprpc.HttpRpc``): nameko's check (the
    call's arguments must fit the method, else IncorrectSignature to the caller) against the
    method's signature built once, at setup: nameko's ``inspect.getcallargs`` rebuilds it on
    every call (3% of an echo's CPU in the service)."""

    container: Any
    method_name: str

    def setup(self):
        super().setup()  # type: ignore[misc]
        self._signature = inspect.signature(getattr(self.container.service_cls, self.method_name))

    def check_signature(self, args, kwargs):
        try:
            self._signature.bind(None, *args, **kwargs)  # None: the unbound method's ``self``
        except TypeError as exc:
            raise IncorrectSignature(str(exc)) from None


class DeadlineRpc(SignatureBoundOnce, Rpc):
    """nameko's RPC entrypoint, refusing a request whose deadline has already passed before
    anything runs: it answers ServiceUnavailable ``deadline_exceeded`` as a normal error reply
    (so a caller still waiting is told at once) and acknowledges the message. Its replies go
    through ``ReplyingRpcConsumer`` (one per service: every service's entrypoints are these)."""

    rpc_consumer = ReplyingRpcConsumer()

    def handle_message(self, body, message):
        try:
            refuse_late_start(self.method_name, deadline_of(self.unpack_message_headers(message)))
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
