"""Events every instance must see: cache invalidation and the test clock.

``shared.events.event_handler`` is a SERVICE_POOL handler: all instances of a service share one
durable queue, so each event reaches ONE instance — right for work done once (a database row),
wrong for state each process keeps in memory (the share service's facts cache, the gateway's
landing pages, the clock offset). ``broadcast_handler`` is nameko's BROADCAST handler type
(nameko 2.14 ``nameko.events.EventHandler``): each instance binds a queue of its own to the
source's events exchange, so every instance gets every event.

* ``reliable_delivery=False``: the queue is exclusive and auto-deleted with the instance's
  connection. nameko refuses a broadcast handler with reliable delivery and the default
  identifier, and a durable per-instance queue would pile up for instances that are gone. What
  this costs: an event published while an instance is disconnected from the broker is not seen
  by it. Each use therefore has a backstop: caches keep their TTL, the clock is also stored in
  Redis and read at start (``shared.clocksync``).
* ``broadcast_identifier``: this instance's id (``shared.instance``) plus a random suffix, so
  the queue name says which process it belongs to in the management UI and a restarted instance
  never collides with the exclusive queue of its predecessor.
* Handlers must only touch in-process state (no database, no outbox): they run in every
  instance, and an error is logged and the message dropped (nothing to retry: the next event,
  or the TTL, fixes a cache).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import eventlet
from nameko.events import BROADCAST, EventHandler
from nameko.messaging import QueueConsumer

from shared.instance import instance_id

_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]+")


class BroadcastEventHandler(EventHandler):
    def __init__(self, source_service: str, event_type: str, **kwargs):
        kwargs.setdefault("handler_type", BROADCAST)
        kwargs.setdefault("reliable_delivery", False)
        super().__init__(source_service, event_type, **kwargs)

    @property
    def broadcast_identifier(self) -> str | None:
        if self.handler_type is not BROADCAST:  # nameko reads it for every handler type
            return None
        config = getattr(getattr(self, "container", None), "config", None)
        return f"{_UNSAFE.sub('_', instance_id(config))}-{uuid.uuid4().hex[:8]}"


broadcast_handler = BroadcastEventHandler.decorator


# nameko 2.14: a container stopped while its QueueConsumer is still setting up its consumers
# (a SIGTERM in the first moments of a process) calls ``unregister_provider`` once per consumer
# without removing anything: each call sends the same "last provider unregistered" event, so the
# second raises "Trying to re-send() an already-triggered event", and if the consumers become
# ready meanwhile they are never cancelled and the consumer thread never ends — the process
# hangs (a gateway's drain watchdog then kills it with exit 1). The gateway met this once its
# broadcast handlers gave it event consumers (tests/integration/test_instances_drain.py stops one
# 0.1 s after it started). Here a consumer stopping that early waits (at most
# ``EARLY_STOP_WAIT_SECONDS``) for the consumers to be ready and is then cancelled the normal
# way; if they never get ready (broker away, start failed), the event is sent once.
EARLY_STOP_WAIT_SECONDS = 3.0
_unregister_provider = QueueConsumer.unregister_provider


def _unregister_provider_when_ready(self: Any, provider: Any) -> None:
    if not self._consumers_ready.ready():
        try:
            with eventlet.Timeout(EARLY_STOP_WAIT_SECONDS):
                self._consumers_ready.wait()
        except (Exception, eventlet.Timeout):  # never started: QueueConsumer.stop kills it
            if not self._last_provider_unregistered.ready():
                self._last_provider_unregistered.send()
            return
    _unregister_provider(self, provider)


QueueConsumer.unregister_provider = _unregister_provider_when_ready
