"""What every domain service answers besides its own RPCs: ``health`` and (test mode) ``set_clock``.

Each service class inherits ``PlatformRpc`` and declares ``db = Database(Base.metadata)``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from nameko.dependency_providers import Config

from shared import clock
from shared.clocksync import ClockFollower
from shared.config import test_mode
from shared.errors import Forbidden
from shared.instance import instance_id
from shared.liveness import Heartbeat
from shared.logs import Correlation
from shared.metrics import Metrics
from shared.queues import EventQueues
from shared.rpc import Deadline, rpc

if TYPE_CHECKING:
    from shared.db import DatabaseHandle


class SharedConfig(Config):
    """nameko's ``Config``, without the copy: nameko hands every worker
    ``container.config.copy()`` (1% of an RPC's CPU in the service, by py-spy); this hands it a
    read-only view of the one dict (``types.MappingProxyType``: ``get``, ``[]``, ``in`` as
    before; a worker that tried to change the configuration gets a TypeError)."""

    def get_dependency(self, worker_ctx):
        return self._view

    def setup(self):
        super().setup()
        self._view = MappingProxyType(self.container.config)


class PlatformRpc(ClockFollower):
    # declared by each service class (``name = "shop"``, ``db = Database(Base.metadata)``)
    name: str
    db: DatabaseHandle

    correlation = Correlation()
    config = SharedConfig()
    deadline = Deadline()

    event_queues = EventQueues()
    metrics = Metrics()  # shared/metrics.py: METRICS_PORT, worker and timer timings
    heartbeat = Heartbeat()  # shared/liveness.py: this instance's own liveness/readiness file

    @rpc
    def health(self) -> dict:
        """ok when the database answers. Also: the outbox backlog and the age in seconds of its
        oldest unpublished row, and per consumer queue how many events are retrying (in
        ``<queue>.retry``) and parked (``<queue>.dead``, see ``python -m shared.dlq``)."""
        backlog = self.db.outbox_backlog()  # raises when the database is unreachable
        try:
            queues: dict | str = self.event_queues()
        except Exception as exc:  # the broker answered this RPC; its depths are only a report
            queues = f"unknown: {exc}"
        return {
            "status": "ok",
            "service": self.name,
            "instance": instance_id(self.config),
            "db": "ok",
            "outbox_backlog": backlog,
            "outbox_oldest_age_seconds": round(self.db.oldest_unpublished_age(), 3),
            "queues": queues,
            "now": clock.iso(clock.now()),
        }

    @rpc
    def set_clock(
        self, now: str | None, offset_seconds: float | None = None, version: int | None = None
    ) -> dict:
        """Move this instance's clock (test mode). The gateway passes the platform-wide move
        (``offset_seconds``, ``version``: shared.clocksync); without them ``now`` is applied
        here alone, as a test of one service does."""
        if not test_mode(self.config):
            raise Forbidden("the platform clock can only be moved in test mode")
        if offset_seconds is not None and version is not None:
            clock.apply(float(offset_seconds), int(version))
        elif now is None:
            clock.reset()
        else:
            clock.set_now(clock.parse(now))
        return {
            "service": self.name,
            "instance": instance_id(self.config),
            "now": clock.iso(clock.now()),
            "version": clock.version(),
        }

    @rpc
    def echo(self, payload=None):
        """A bare RPC: the floor the benchmarks compare against."""
        return payload
