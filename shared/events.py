"""Consuming events reliably: bounded retries, then a dead-letter queue an operator can replay.

nameko's ``@event_handler`` acks and drops a message whose handler raised. Ours
(``shared.events.event_handler``) does this instead:

* the handler raised → the message is re-published to ``<queue>.retry``, a queue whose messages
  expire after a back-off delay and dead-letter back into ``<queue>``; the attempt number
  travels in the ``x-xiaopu-attempts`` header;
* after ``XIAOPU_EVENT_MAX_ATTEMPTS`` tries (default 5) it goes to ``<queue>.dead`` with the
  error text, where ``python -m shared.dlq list|replay`` shows it and puts it back.

Handlers are idempotent through the inbox: the first thing a handler does is
``uow.claim(event, "<handler name>")`` inside the transaction of its effect.
"""

from __future__ import annotations

import logging

from kombu import Exchange, Queue
from nameko.amqp.publish import Publisher
from nameko.events import EventHandler

log = logging.getLogger(__name__)

ATTEMPTS_HEADER = "x-xiaopu-attempts"
ERROR_HEADER = "x-xiaopu-error"
ORIGIN_HEADER = "x-xiaopu-origin-queue"
DEFAULT_EXCHANGE = Exchange("")


def retry_delay_seconds(attempt: int) -> float:
    return min(30.0, 0.2 * 2 ** (attempt - 1))


class ReliableEventHandler(EventHandler):
    def setup(self):
        super().setup()
        config = self.container.config
        self.max_attempts = int(config.get("XIAOPU_EVENT_MAX_ATTEMPTS", 5))
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

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            return
        headers = dict(message.headers or {})
        attempt = int(headers.get(ATTEMPTS_HEADER, 0)) + 1
        headers[ATTEMPTS_HEADER] = attempt
        headers[ORIGIN_HEADER] = self.queue.name
        headers[ERROR_HEADER] = f"{exc_info[0].__name__}: {exc_info[1]}"[:1000]
        try:
            if attempt >= self.max_attempts:
                log.error(
                    "event %s gave up after %d attempts (%s); parked on %s",
                    self.method_name,
                    attempt,
                    headers[ERROR_HEADER],
                    self.dead_queue.name,
                )
                self._republish(message, self.dead_queue, headers)
            else:
                delay = retry_delay_seconds(attempt)
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
