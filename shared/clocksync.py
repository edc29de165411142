"""The test clock in every instance, also after a restart (test mode only).

``POST /api/v1/admin/clock`` (gateway.routes.platform) moves the clock once for the platform:

1. it stores ``{offset_seconds, version}`` in Redis (``XIAOPU_REDIS_URL``, the store the rate
   limits already share) under ``XIAOPU_CLOCK_KEY`` (default ``xiaopu:clock:<AMQP vhost>``, so
   platforms on different vhosts — parallel test runs — never share a clock); kept for
   ``XIAOPU_CLOCK_KEEP_SECONDS`` (30 days), deleted by ``{"now": null}``;
2. it broadcasts ``clock_moved`` (``shared.contracts.events.ClockMoved``) from the gateway's
   events exchange: every instance of every service and every gateway (``ClockFollower``, a
   BROADCAST handler, ``shared.broadcast``) applies the offset;
3. it calls each service's ``set_clock`` RPC with the same offset and version (one instance per
   service, synchronously, as before);
4. each instance announces its clock in its next heartbeat (``shared.liveness``, sent at once
   on a change), and the gateway answers when every live instance shows the new version (at
   most ``XIAOPU_CLOCK_SYNC_SECONDS``, 5; the answer lists the ones that did not confirm).

An instance that starts (or restarts) in test mode reads the stored move from Redis before it
serves anything, so it comes up at the moved time. Outside test mode nothing is read, stored or
applied: production has no clock moving. Redis unreachable: the move still reaches the running
instances (broadcast + RPC), a WARNING says that a restarted instance will not follow.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import unquote, urlparse

from nameko.extensions import DependencyProvider

from shared import clock
from shared.broadcast import broadcast_handler
from shared.config import test_mode
from shared.contracts.events import ClockMoved
from shared.instance import setting

log = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_TIMEOUT_SECONDS = 0.5
DEFAULT_KEEP_SECONDS = 30 * 24 * 3600
DEFAULT_SYNC_SECONDS = 5.0


def clock_key(config: Any) -> str:
    explicit = setting(config, "XIAOPU_CLOCK_KEY")
    if explicit:
        return explicit
    amqp = setting(config, "AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
    vhost = unquote(urlparse(amqp).path[1:]) or "/"
    return f"xiaopu:clock:{vhost}"


def sync_seconds(config: Any) -> float:
    return float(setting(config, "XIAOPU_CLOCK_SYNC_SECONDS", str(DEFAULT_SYNC_SECONDS)))


class ClockStore:
    """The stored move, in Redis. Every method answers None/False when Redis is away."""

    def __init__(self, redis_url: str, key: str, keep_seconds: int):
        self.redis_url = redis_url
        self.key = key
        self.keep_seconds = keep_seconds
        self._redis: Any = None

    def _client(self) -> Any:
        if self._redis is None:
            import redis  # only test mode needs it

            self._redis = redis.Redis.from_url(
                self.redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
        return self._redis

    def load(self) -> tuple[float, int] | None:
        try:
            raw = self._client().get(self.key)
        except Exception as exc:
            log.warning("test clock: cannot read %s from Redis (%s)", self.key, exc)
            return None
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return float(data["offset_seconds"]), int(data["version"])
        except (ValueError, KeyError, TypeError):
            log.warning("test clock: ignoring an unreadable %s in Redis", self.key)
            return None

    def save(self, offset: float, version: int) -> bool:
        try:
            if offset == 0:
                self._client().delete(self.key)
            else:
                payload = json.dumps({"offset_seconds": offset, "version": version})
                self._client().set(self.key, payload, ex=self.keep_seconds)
            return True
        except Exception as exc:
            log.warning(
                "test clock: cannot store the move in Redis (%s); running instances follow it, "
                "a restarted one will not",
                exc,
            )
            return False


class ClockSync(DependencyProvider):
    """Applies the stored move when the instance starts (test mode); ``self.clock_sync`` in a
    worker is the ``ClockStore`` (None outside test mode)."""

    def setup(self) -> None:
        config = self.container.config
        self.enabled = test_mode(config)
        self.store: ClockStore | None = None
        if self.enabled:
            self.store = ClockStore(
                setting(config, "XIAOPU_REDIS_URL", DEFAULT_REDIS_URL),
                clock_key(config),
                int(setting(config, "XIAOPU_CLOCK_KEEP_SECONDS", str(DEFAULT_KEEP_SECONDS))),
            )
            # in setup, not start: every extension is set up before any starts consuming
            self._load()

    def _load(self) -> None:
        if self.store is None:
            return
        stored = self.store.load()
        if stored is not None and clock.apply(*stored):
            log.warning("test clock: started at the stored move, now %s", clock.iso(clock.now()))

    def get_dependency(self, worker_ctx: Any) -> ClockStore | None:
        return self.store


class ClockFollower:
    """Mixed into every service class (``PlatformRpc``) and the gateway: follows the moves."""

    config: dict
    clock_sync = ClockSync()

    @broadcast_handler("gateway", "clock_moved")
    def follow_clock(self, event: dict) -> None:
        if not test_mode(self.config):
            log.error("a clock_moved event outside test mode was ignored")
            return
        move = ClockMoved.model_validate(event["data"])
        clock.apply(move.offset_seconds, move.version)
