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

from nameko.events import BROADCAST, EventHandler

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
