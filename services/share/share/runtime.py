"""In-process state of the share service: caches, the visit buffer and the flood limiter.

``ShareRuntime`` is a nameko dependency (one per container). What it keeps:

* share rows by id and by code (they never change);
* the facts a share shows (product title/price/image, shop name, keeper's reason) with a TTL
  (``facts_ttl_seconds``), dropped early by product/selection/shop events;
* rendered posters by hash (an LRU in memory in front of the ``poster_cache`` table), the digest
  and fitted photo of each catalog image;
* the visit buffer: visits are appended here (never written on the request path) and a timer
  flushes them to the database in one transaction; ``VisitLimits`` (token buckets per visitor
  id and per client address) decide which of them are counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from nameko.extensions import DependencyProvider

from share.domain import ShareRules, VisitLimits
from share.posters import PosterRenderer, find_cjk_font
from shared.config import rules

log = logging.getLogger(__name__)

MAX_BUFFERED_VISITS = 100_000


class Lru:
    def __init__(self, size: int):
        self.size = size
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key, value):
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return value

    def pop(self, key):
        with self._lock:
            return self._data.pop(key, None)

    def items(self):
        with self._lock:
            return list(self._data.items())


class State:
    def __init__(self, config: dict):
        self.config = config
        self.rules = ShareRules.from_config(rules(config))
        self.font_path, self.font_note = find_cjk_font(config.get("SHARE_FONT_PATH") or None)
        if self.font_path:
            log.info("posters use the CJK font %s (%s)", self.font_path, self.font_note)
        else:
            log.error("POSTERS DISABLED: %s", self.font_note)
        self.renderer = PosterRenderer(self.font_path)
        self.shares_by_id = Lru(50_000)
        self.share_id_by_code = Lru(50_000)
        self.facts = Lru(20_000)  # share_id → (expires_monotonic, facts)
        self.posters = Lru(64)  # poster key → (content_type, bytes)
        self.image_digest = Lru(10_000)  # image_ref → sha256 of its bytes
        self.photos = Lru(16)  # image_ref → decoded PIL image
        self.photo_bytes = Lru(64)  # digest → fitted JPEG for the landing page
        self.limits = VisitLimits.from_rules(self.rules)
        self._visits: list[dict] = []
        self._visit_lock = threading.Lock()
        self.dropped_visits = 0

    # -- facts cache ------------------------------------------------------------------------
    def cached_facts(self, share_id: str) -> dict | None:
        hit = self.facts.get(share_id)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def keep_facts(self, share_id: str, facts: dict) -> dict:
        self.facts.put(share_id, (time.monotonic() + self.rules.facts_ttl_seconds, facts))
        return facts

    def forget_facts(self, product_id: int | None = None, shop_id: int | None = None) -> int:
        dropped = 0
        for share_id, (_, facts) in self.facts.items():
            if (product_id is None or facts["product_id"] == product_id) and (
                shop_id is None or facts["shop_id"] == shop_id
            ):
                self.facts.pop(share_id)
                dropped += 1
        return dropped

    # -- visit buffer -----------------------------------------------------------------------
    def buffer_visits(self, visits: list[dict]) -> None:
        with self._visit_lock:
            self._visits.extend(visits)
            overflow = len(self._visits) - MAX_BUFFERED_VISITS
            if overflow > 0:  # the database is away for long: keep memory bounded
                del self._visits[:overflow]
                self.dropped_visits += overflow
                log.warning("visit buffer full: dropped %d visits", overflow)

    def take_visits(self) -> list[dict]:
        with self._visit_lock:
            taken, self._visits = self._visits, []
            return taken

    def return_visits(self, visits: list[dict]) -> None:
        with self._visit_lock:
            self._visits[:0] = visits

    def pending_visits(self) -> list[dict]:
        with self._visit_lock:
            return list(self._visits)


class ShareRuntime(DependencyProvider):
    def setup(self):
        self.state = State(self.container.config)

    def get_dependency(self, worker_ctx):
        return self.state
