"""Rate limits on anonymous lookups, per client address AND global, shared by every gateway
instance through Redis (issue 13: all 10^6 shop numbers could be scanned at ~70 requests/s).

    @route("GET", "/api/v1/shops/by-number/<shop_number>", limit="shop_lookup", ...)

Each limit group has two token buckets: one per client address (``gateway.client``: the
socket peer unless a trusted proxy forwarded it) and one for everybody. A request takes a
token from both or from neither; when either is empty the answer is 429 ``rate_limited`` with
``Retry-After`` (seconds) and the envelope. Both buckets live in Redis (``XIAOPU_REDIS_URL``)
and are checked and taken by one Lua script, so the limit holds across gateway instances and
races. When Redis cannot be reached the gateway falls back to the same buckets in its own
memory (logged as a WARNING, retried every few seconds): requests are never failed for it.

Configuration (gateway config.yml ``RATE_LIMITS``; each group's value is a ``k=v`` list and
keys left out keep their defaults)::

    RATE_LIMITS:
      enabled: 1
      prefix: xprl           # Redis key prefix (tests use one of their own)
      shop_lookup: address_burst=30,address_per_minute=60,global_burst=600,global_per_minute=6000
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from nameko.extensions import DependencyProvider

from shared.errors import XiaopuError
from shared.lru import LRU
from shared.rules import ConfiguredRules

log = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_RETRY_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 0.25
LOCAL_BUCKETS = 100_000


def _limits(address_burst: int, address_pm: int, global_burst: int, global_pm: int) -> Any:
    return field(
        default_factory=lambda: {
            "address_burst": address_burst,
            "address_per_minute": address_pm,
            "global_burst": global_burst,
            "global_per_minute": global_pm,
        }
    )


@dataclass(frozen=True)
class RateLimitRules(ConfiguredRules):
    enabled: bool = True
    prefix: str = "xprl"
    # a shop number names a shop's public picks: scanning all 10^6 must take weeks, not hours
    shop_lookup: dict[str, int] = _limits(30, 60, 600, 6000)
    # a pasted share code (the surrounding text is searched): same as a shop number
    share_resolve: dict[str, int] = _limits(30, 60, 600, 6000)
    # the landing page: many buyers share one NAT address (the visit-count ceiling is 2,000)
    landing: dict[str, int] = _limits(2000, 1200, 20000, 120000)
    # products, images, posters: public anyway, limited against scraping and load
    lookup: dict[str, int] = _limits(300, 600, 6000, 60000)
    # registering answers whether a phone is taken: a lookup of who is a member
    signup: dict[str, int] = _limits(60, 60, 1200, 6000)

    def group(self, name: str) -> "Limit":
        defaults = dict(dataclass_defaults()[name])
        values = {**defaults, **(getattr(self, name) or {})}
        return Limit(
            name,
            values["address_burst"],
            values["address_per_minute"] / 60.0,
            values["global_burst"],
            values["global_per_minute"] / 60.0,
        )


def dataclass_defaults() -> dict[str, dict[str, int]]:
    return {
        name: value for name, value in vars(RateLimitRules()).items() if isinstance(value, dict)
    }


@dataclass(frozen=True)
class Limit:
    name: str
    address_burst: int
    address_per_second: float
    global_burst: int
    global_per_second: float


class RateLimited(XiaopuError):
    status = 429
    code = "rate_limited"

    def __init__(self, group: str, retry_after: int):
        super().__init__(
            "too many requests: try again later",
            details={"limit": group, "retry_after": retry_after},
        )
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


# Both buckets are refilled to now, then both are taken from, or neither. Returns 0 when the
# request may go on, else the milliseconds until it could. Time is Redis's, so every gateway
# instance agrees on it.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
local left = {}
for i, key in ipairs(KEYS) do
  local burst = tonumber(ARGV[2 * i - 1])
  local per_ms = tonumber(ARGV[2 * i])
  local v = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(v[1])
  local ts = tonumber(v[2])
  if tokens == nil or ts == nil then
    tokens = burst
    ts = now
  end
  tokens = math.min(burst, tokens + math.max(0, now - ts) * per_ms)
  left[i] = tokens
  if tokens < 1 then
    local w = math.ceil((1 - tokens) / per_ms)
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  local burst = tonumber(ARGV[2 * i - 1])
  local per_ms = tonumber(ARGV[2 * i])
  redis.call('HSET', key, 'tokens', tostring(left[i] - 1), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil(burst / per_ms) + 1000)
end
return 0
"""


class LocalBuckets:
    """The same two-bucket take in this process's memory: the fallback while Redis is away."""

    def __init__(self, size: int = LOCAL_BUCKETS):
        self._buckets: LRU[str, tuple[float, float]] = LRU(size)
        self._lock = threading.Lock()

    def take(self, keys: list[str], limits: list[tuple[float, float]]) -> float:
        """0 when taken, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            wait, left = 0.0, []
            for key, (burst, per_second) in zip(keys, limits, strict=True):
                tokens, ts = self._buckets.get(key) or (burst, now)
                tokens = min(burst, tokens + max(0.0, now - ts) * per_second)
                left.append(tokens)
                if tokens < 1:
                    wait = max(wait, (1 - tokens) / per_second)
            if wait > 0:
                return wait
            for key, tokens in zip(keys, left, strict=True):
                self._buckets.put(key, (tokens - 1, now))
            return 0.0


class Limiter:
    def __init__(self, rules: RateLimitRules, redis_url: str | None):
        self.rules = rules
        self.redis_url = redis_url
        self.local = LocalBuckets()
        self._redis: Any = None
        self._script: Any = None
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._groups = {name: rules.group(name) for name in dataclass_defaults()}

    def limit(self, name: str) -> Limit:
        return self._groups[name]

    def _client(self) -> Any:
        if not self.redis_url or time.monotonic() < self._down_until:
            return None
        with self._lock:
            if self._redis is None:
                import redis  # imported here: a gateway without limits never needs it

                self._redis = redis.Redis.from_url(
                    self.redis_url,
                    socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                    socket_timeout=REDIS_TIMEOUT_SECONDS,
                )
                self._script = self._redis.register_script(TAKE)
        return self._script

    def hit(self, name: str, address: str | None) -> None:
        """Take a token for this request; RateLimited (429) when the group's address or
        global bucket is empty."""
        if not self.rules.enabled:
            return
        limit = self._groups[name]
        keys = [f"{self.rules.prefix}:{name}:g"]
        limits = [(float(limit.global_burst), limit.global_per_second)]
        if address:
            keys.insert(0, f"{self.rules.prefix}:{name}:a:{address}")
            limits.insert(0, (float(limit.address_burst), limit.address_per_second))
        wait = self._take(keys, limits)
        if wait > 0:
            raise RateLimited(name, max(1, math.ceil(wait)))

    def _take(self, keys: list[str], limits: list[tuple[float, float]]) -> float:
        script = self._client()
        if script is not None:
            args: list[Any] = []
            for burst, per_second in limits:
                args += [burst, per_second / 1000.0]
            try:
                return int(script(keys=keys, args=args)) / 1000.0
            except Exception as exc:  # any Redis failure: limit in memory, never fail
                self._down_until = time.monotonic() + REDIS_RETRY_SECONDS
                log.warning(
                    "rate limits: Redis at %s unreachable (%s); limiting in this process "
                    "for %.0f s",
                    self.redis_url,
                    exc,
                    REDIS_RETRY_SECONDS,
                )
        return self.local.take(keys, limits)


class RateLimits(DependencyProvider):
    """``self.rate_limits.hit("shop_lookup", address)`` (the route decorator does it)."""

    def setup(self):
        cfg = self.container.config
        rules = RateLimitRules.from_config(cfg.get("RATE_LIMITS") or {})
        url = str(cfg.get("XIAOPU_REDIS_URL") or DEFAULT_REDIS_URL)
        self.limiter = Limiter(rules, url)

    def get_dependency(self, worker_ctx):
        return self.limiter
