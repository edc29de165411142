"""Consuming events reliably: bounded retries, then a dead-letter queue an operator can replay.

nameko's ``@event_handler`` acks and drops a message whose handler raised. Ours
(``shared.events.event_handler``) does this instead:

* the handler raised → the message is re-published to ``<queue>.retry``, a queue whose messages
  expire after a back-off delay and dead-letter back into ``<queue>``; the attempt number
  travels in the ``x-xiaopu-attempts`` header, the time of its first failure in
  ``x-xiaopu-first-failed-at``. The delay starts at 0.2 s and doubles up to
  ``XIAOPU_EVENT_RETRY_MAX_DELAY_SECONDS`` (300);
* once it has been failing for ``XIAOPU_EVENT_RETRY_HORIZON_SECONDS`` (3600: a database outage
  of minutes parks nothing) it goes to ``<queue>.dead`` with the error text, where
  ``python -m shared.dlq list|replay`` shows it and puts it back. (``XIAOPU_EVENT_MAX_ATTEMPTS``,
  unset by default, also caps the tries: tests use it to park quickly.)

``health`` (shared/platform.py) reports per queue how many messages are retrying and parked.

Handlers are idempotent through the inbox: the first thing a handler does is
``uow.claim(event, "<handler name>")`` inside the transaction of its effect.

A high-volume stream is consumed in batches (``batch_event_handler``): the method gets a list
of events — what arrived within ``XIAOPU_EVENT_BATCH_LINGER_SECONDS`` (0.1) of the first, at
most ``XIAOPU_EVENT_BATCH_SIZE`` (50, never more than the consumer's prefetch, ``max_workers``)
— and handles them in one unit of work, claiming them with ``uow.claim_all(events, name)``
(one INSERT for the batch; only the events it returns are new). One worker, one transaction
and one commit per batch instead of per event. The messages are acknowledged after the
batch's worker succeeded; when it raised, each event of the batch is tried again alone, so
an event that keeps failing is retried and parked by itself as above, never taking its
neighbours with it.

A high-volume stream may also arrive PACKED (``shared.outbox``: the relay puts up to
``OUTBOX_PACK_SIZE`` events of one type in one message, a JSON array, with the
``x-xiaopu-pack`` header): one publish, one delivery per consumer queue and one ack instead of
one per event. Both handlers unpack it here, so a handler's method sees events exactly as
before: ``event_handler`` runs one worker per event, ``batch_event_handler`` adds each event to
its batch. The message is acknowledged once every event in it was handled; an event that failed
is retried and parked ALONE (republished as a message of its own), so a pack never fails as a
whole; if the broker is in trouble while parking one, the whole pack is redelivered and the
inbox absorbs the events already handled.
"""

from __future__ import annotations

import json
import logging
import time
from functools import partial

import eventlet
import eventlet.event
from kombu import Exchange, Queue
from nameko.amqp.publish import Publisher
from nameko.events import EventHandler
from nameko.exceptions import ContainerBeingKilled

log = logging.getLogger(__name__)

ATTEMPTS_HEADER = "x-xiaopu-attempts"
ERROR_HEADER = "x-xiaopu-error"
ORIGIN_HEADER = "x-xiaopu-origin-queue"
DEFAULT_EXCHANGE = Exchange("")


FIRST_FAILED_HEADER = "x-xiaopu-first-failed-at"
PACK_HEADER = "x-xiaopu-pack"  # a packed message: its body is a JSON array of events
CORRELATION_HEADER = "nameko.correlation_id"


class PackedEvent:
    """One event of a packed message, standing in for a message of its own where a handler
    acks, requeues or republishes it (``.body``, ``.headers``, ``.ack()``, ``.requeue()``,
    ``.channel``). The pack's message is acked when its last event is; requeued instead if any
    of its events was."""

    __slots__ = ("event", "headers", "pack")

    def __init__(self, event: dict, headers: dict, pack: _Pack):
        self.event = event
        self.headers = headers
        self.pack = pack

    @property
    def body(self) -> str:
        return json.dumps(self.event)

    @property
    def channel(self):
        return self.pack.message.channel

    @property
    def content_type(self):
        return self.pack.message.content_type

    @property
    def content_encoding(self):
        return self.pack.message.content_encoding

    def ack(self) -> None:
        self.pack.settle(requeue=False)

    def requeue(self) -> None:
        self.pack.settle(requeue=True)


class _Pack:
    __slots__ = ("message", "left", "requeue")

    def __init__(self, message, size: int):
        self.message = message
        self.left = size
        self.requeue = False

    def settle(self, requeue: bool) -> None:
        self.requeue = self.requeue or requeue
        self.left -= 1
        if self.left == 0:
            if self.requeue:
                self.message.requeue()
            else:
                self.message.ack()


def unpacked(body, message) -> list[tuple[dict, object]]:
    """[(event, its message)]: a packed message's events, each with a ``PackedEvent``
    standing in for its message (its own correlation id in its headers); a plain message is
    one event. An empty pack is acked at once."""
    headers = message.headers or {}
    if not (PACK_HEADER in headers and isinstance(body, list)):
        return [(body, message)]
    if not body:
        message.ack()
        return []
    pack = _Pack(message, len(body))
    out: list[tuple[dict, object]] = []
    for event in body:
        own = dict(headers)
        del own[PACK_HEADER]
        correlation = event.get("correlation_id") if isinstance(event, dict) else None
        if correlation:
            own[CORRELATION_HEADER] = correlation
        out.append((event, PackedEvent(event, own, pack)))
    return out


FIRST_DELAY = 0.2


def retry_delay_seconds(attempt: int, max_delay: float = 300.0) -> float:
    """0.2 s after the first failure, doubling, capped at ``max_delay``."""
    return min(max_delay, FIRST_DELAY * 2 ** min(attempt - 1, 40))


def retry_plan(
    attempt: int,
    first_failed_at: float,
    now: float,
    horizon: float,
    max_delay: float,
    max_attempts: int | None = None,
) -> float | None:
    """The delay before the next try of an event that failed ``attempt`` times, the first
    failure at ``first_failed_at`` (epoch seconds); None: park it (the horizon has passed, or
    the optional attempt cap is reached). The last delay is cut so the final try happens at
    the horizon, not up to ``max_delay`` after it."""
    if max_attempts is not None and attempt >= max_attempts:
        return None
    left = horizon - (now - first_failed_at)
    if left <= 0:
        return None
    return max(FIRST_DELAY, min(retry_delay_seconds(attempt, max_delay), left))


class ReliableEventHandler(EventHandler):
    def setup(self):
        super().setup()
        config = self.container.config
        self.horizon = float(config.get("XIAOPU_EVENT_RETRY_HORIZON_SECONDS", 3600))
        self.max_delay = float(config.get("XIAOPU_EVENT_RETRY_MAX_DELAY_SECONDS", 300))
        cap = config.get("XIAOPU_EVENT_MAX_ATTEMPTS")
        self.max_attempts = int(cap) if cap not in (None, "") else None
        name = self.queue.name
        self.retry_queue = Queue(
            f"{name}.retry",
            exchange=DEFAULT_EXCHANGE,
            routing_key=f"{name}.retry",
            durable=True,
            queue_arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": name},
        )
        self.dead_queue = Queue(
            f"{name}.dead", exchange=DEFAULT_EXCHANGE, routing_key=f"{name}.dead", durable=True
        )
        self.publisher = Publisher(config["AMQP_URI"])

    def handle_message(self, body, message):
        """One worker per event. A packed message's events run one after another, from a
        thread of their own: one worker at a time per message, as for a plain one, so with
        the prefetch equal to ``max_workers`` a spawn never waits for a free worker (a spawn
        waiting in the consumer's thread could start a worker after the container was
        killed)."""
        events = unpacked(body, message)
        if len(events) == 1 and events[0][1] is message:
            super().handle_message(body, message)
        elif events:
            self.container.spawn_managed_thread(partial(self._one_after_another, events))

    def _one_after_another(self, events: list) -> None:
        for n, (event, delivery) in enumerate(events):
            done = eventlet.event.Event()

            def finished(worker_ctx, result=None, exc_info=None, delivery=delivery, done=done):
                try:
                    return self.handle_result(delivery, worker_ctx, result, exc_info)
                finally:
                    done.send()

            try:
                self.container.spawn_worker(
                    self,
                    (event,),
                    {},
                    context_data=self.unpack_message_headers(delivery),
                    handle_result=finished,
                )
            except ContainerBeingKilled:  # the rest of the pack is delivered again
                for _, rest in events[n:]:
                    self.queue_consumer.requeue_message(rest)
                return
            done.wait()

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            return
        headers = dict(message.headers or {})
        attempt = int(headers.get(ATTEMPTS_HEADER, 0)) + 1
        now = time.time()
        first = float(headers.get(FIRST_FAILED_HEADER) or now)
        headers[ATTEMPTS_HEADER] = attempt
        headers[FIRST_FAILED_HEADER] = first
        headers[ORIGIN_HEADER] = self.queue.name
        headers[ERROR_HEADER] = f"{exc_info[0].__name__}: {exc_info[1]}"[:1000]
        delay = retry_plan(attempt, first, now, self.horizon, self.max_delay, self.max_attempts)
        try:
            if delay is None:
                log.error(
                    "event %s gave up after %d attempts over %.0fs (%s); parked on %s",
                    self.method_name,
                    attempt,
                    now - first,
                    headers[ERROR_HEADER],
                    self.dead_queue.name,
                )
                self._republish(message, self.dead_queue, headers)
            else:
                log.warning(
                    "event %s failed (attempt %d, %s); retrying in %.1fs",
                    self.method_name,
                    attempt,
                    headers[ERROR_HEADER],
                    delay,
                )
                self._republish(message, self.retry_queue, headers, expiration=delay)
        except Exception:  # the broker itself is in trouble: let it redeliver
            log.exception("could not park failed event; requeueing it")
            self.queue_consumer.requeue_message(message)
            return
        self.queue_consumer.ack_message(message)

    def _republish(self, message, queue: Queue, headers: dict, expiration=None):
        kwargs = {"expiration": expiration} if expiration else {}
        self.publisher.publish(
            message.body,
            exchange=DEFAULT_EXCHANGE,
            routing_key=queue.name,
            headers=headers,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            declare=[queue],
            **kwargs,
        )


event_handler = ReliableEventHandler.decorator


class BatchedEventHandler(ReliableEventHandler):
    """``ReliableEventHandler`` whose method is called with a LIST of events (module
    docstring). Its queue is the one ``event_handler`` would declare for the same method, so
    a consumer can switch between the two without losing messages."""

    def setup(self):
        super().setup()
        config = self.container.config
        size = int(config.get("XIAOPU_EVENT_BATCH_SIZE", 50))
        self.max_batch = max(1, min(size, self.container.max_workers))
        self.linger = float(config.get("XIAOPU_EVENT_BATCH_LINGER_SECONDS", 0.1))
        self._pending: list[tuple[dict, object]] = []
        self._timer = None

    def stop(self):
        self._flush()  # a graceful stop handles what is buffered (its workers are waited for)
        super().stop()

    def handle_message(self, body, message):
        """Called once per message (a green thread each): buffer its events (``unpacked``); a
        full buffer is handed to a worker at once, else the first event starts the linger."""
        for item in unpacked(body, message):
            self._pending.append(item)
            if len(self._pending) >= self.max_batch:
                self._flush()
        if self._pending and self._timer is None:
            self._timer = eventlet.spawn_after(self.linger, self._flush)

    def _flush(self):
        if self._timer is not None:
            self._timer.cancel()  # a no-op when the timer is what runs this
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            self._spawn(batch)

    def _spawn(self, batch: list) -> None:
        bodies = [body for body, _ in batch]
        messages = [message for _, message in batch]
        try:
            self.container.spawn_worker(
                self,
                (bodies,),
                {},
                context_data=self.unpack_message_headers(messages[0]),
                handle_result=partial(self.handle_batch_result, batch),
            )
        except ContainerBeingKilled:
            for message in messages:
                self.queue_consumer.requeue_message(message)

    def handle_batch_result(self, batch, worker_ctx, result=None, exc_info=None):
        if exc_info is None or len(batch) == 1:
            for _, message in batch:
                self.handle_message_processed(message, result, exc_info)
        else:  # nothing of the batch was committed: each event is tried alone, now
            log.warning(
                "event batch %s of %d failed (%s: %s); trying each event alone",
                self.method_name,
                len(batch),
                exc_info[0].__name__,
                exc_info[1],
            )
            # from a thread of its own: this one holds a worker slot the retries may need
            self.container.spawn_managed_thread(partial(self._one_by_one, batch))
        return result, exc_info

    def _one_by_one(self, batch: list) -> None:
        for item in batch:
            self._spawn([item])


batch_event_handler = BatchedEventHandler.decorator
