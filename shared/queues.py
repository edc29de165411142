"""How many events wait in a service's retry and dead-letter queues, read from the broker.

Each ``@event_handler`` (``shared.events``) consumes ``<queue>``; a failing event waits in
``<queue>.retry`` for its back-off, and one that kept failing past the retry horizon is parked on
``<queue>.dead``. The depths are read with a passive ``queue_declare`` through kombu (the AMQP
port, not the management API); a queue that was never declared (nothing ever failed) counts 0.

``health`` (shared/platform.py) reports them per queue; the invariant checker
(``python -m shared.invariants``) requires every ``.dead`` queue to be empty.
"""

from __future__ import annotations

import inspect
from typing import Any

from amqp.exceptions import NotFound as QueueNotFound
from kombu import Connection
from nameko.events import SERVICE_POOL, EventHandler
from nameko.extensions import DependencyProvider

from shared.events import ReliableEventHandler


def consumer_queues(service_cls: type, service_name: str) -> list[str]:
    """The queues of the service's reliable event handlers (nameko's SERVICE_POOL naming)."""
    names = []
    for attr, fn in inspect.getmembers(service_cls, inspect.isfunction):
        for ep in getattr(fn, "nameko_entrypoints", ()):
            if isinstance(ep, ReliableEventHandler) and ep.handler_type == SERVICE_POOL:
                names.append(f"evt-{ep.source_service}-{ep.event_type}--{service_name}.{attr}")
            elif isinstance(ep, EventHandler):  # another kind: named by nameko at setup
                continue
    return sorted(names)


def queue_depths(amqp_uri: str, names: list[str], timeout: float = 3.0) -> dict[str, int]:
    """{queue: messages ready in it} by passive declare; 0 for a queue that does not exist."""
    depths: dict[str, int] = {}
    with Connection(amqp_uri, connect_timeout=timeout) as conn:
        channel: Any = None
        for name in names:
            if channel is None:
                channel = conn.channel()
            try:
                _, count, _ = channel.queue_declare(queue=name, passive=True)
            except QueueNotFound:  # never declared: nothing ever failed there
                count, channel = 0, None  # the broker closed the channel
            depths[name] = int(count)
        if channel is not None:
            channel.close()
    return depths


def retrying_and_parked(amqp_uri: str, queues: list[str]) -> dict[str, dict[str, int]]:
    """{consumer queue: {"retrying": n in <queue>.retry, "parked": n in <queue>.dead}}."""
    depths = queue_depths(amqp_uri, [f"{q}.{kind}" for q in queues for kind in ("retry", "dead")])
    return {q: {"retrying": depths[f"{q}.retry"], "parked": depths[f"{q}.dead"]} for q in queues}


class EventQueues(DependencyProvider):
    """``self.event_queues()`` in a worker: the retrying and parked counts of this service's
    consumer queues (empty for a service that consumes no events)."""

    def setup(self) -> None:
        self.amqp_uri = self.container.config["AMQP_URI"]
        self.queues = consumer_queues(self.container.service_cls, self.container.service_name)

    def get_dependency(self, worker_ctx):
        def read() -> dict[str, dict[str, int]]:
            if not self.queues:
                return {}
            return retrying_and_parked(self.amqp_uri, self.queues)

        return read
