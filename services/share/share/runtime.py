"""In-process state of the share service: caches and the visit buffer.

``ShareRuntime`` is a nameko dependency (one ``State`` per container). What it keeps, each in a
``shared.lru.LRU``:

* share rows by id and by code (they never change);
* the facts a share shows (product title/price/image, shop name, keeper's reason) for
  ``facts_ttl_seconds``, dropped early by product/selection/shop events;
* rendered posters by hash (in front of the ``poster_cache`` table), the digest and fitted
  photo of each catalog image;
* the visit buffer: visits are appended here (never written on the request path) and a timer
  flushes them to the database in one transaction; ``VisitLimits`` (token buckets per visitor
  id and per client address) decide which of them are counted.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from nameko.extensions import DependencyProvider

from share.domain import ShareRules, VisitLimits
from share.posters import PosterRenderer, find_cjk_font
from shared.lru import LRU

log = logging.getLogger(__name__)

MAX_BUFFERED_VISITS = 100_000

FactsKey = tuple[str, int, int]  # (share_id, shop_id, product_id)


def facts_key(share: dict) -> FactsKey:
    return (share["id"], int(share["shop_id"]), int(share["product_id"]))


class State:
    def __init__(self, config: dict):
        self.config = config
        self.rules = ShareRules.from_config(config)
        self.font_path, self.font_note = find_cjk_font(config.get("SHARE_FONT_PATH") or None)
        if self.font_path:
            log.info("posters use the CJK font %s (%s)", self.font_path, self.font_note)
        else:
            log.error("POSTERS DISABLED: %s", self.font_note)
        self.renderer = PosterRenderer(self.font_path)
        self.shares_by_id: LRU[str, dict] = LRU(50_000)
        self.share_id_by_code: LRU[str, str] = LRU(50_000)
        self.facts: LRU[FactsKey, dict] = LRU(20_000, ttl=self.rules.facts_ttl_seconds)
        self.posters: LRU[str, tuple[str, bytes]] = LRU(64)  # poster key → (type, bytes)
        self.image_digest: LRU[str, str] = LRU(10_000)  # image_ref → sha256 of its bytes
        self.photos: LRU[str, Any] = LRU(16)  # image_ref → decoded PIL image
        self.photo_bytes: LRU[str, bytes] = LRU(64)  # digest → fitted JPEG for the landing page
        self.limits = VisitLimits.from_rules(self.rules)
        self._visits: list[dict] = []
        self._flushing: list[dict] = []
        self._visit_lock = threading.Lock()
        self.dropped_visits = 0

    # -- facts cache ------------------------------------------------------------------------
    def cached_facts(self, share: dict) -> dict | None:
        return self.facts.get(facts_key(share))

    def keep_facts(self, share: dict, facts: dict) -> dict:
        self.facts.put(facts_key(share), facts)
        return facts

    def forget_facts(self, product_id: int | None = None, shop_id: int | None = None) -> int:
        return self.facts.discard_where(
            lambda k: (
                (product_id is None or k[2] == product_id) and (shop_id is None or k[1] == shop_id)
            )
        )

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
        """The buffer, for one flush; ``flushed`` or ``return_visits`` ends the flush."""
        with self._visit_lock:
            taken, self._visits = self._visits, []
            self._flushing = list(taken)
            return taken

    def flushed(self) -> None:
        with self._visit_lock:
            self._flushing = []

    def return_visits(self, visits: list[dict]) -> None:
        with self._visit_lock:
            self._visits[:0] = visits
            self._flushing = []

    def pending_visits(self) -> list[dict]:
        """Visits not yet in the database: buffered, or being flushed right now."""
        with self._visit_lock:
            return self._flushing + self._visits


class ShareRuntime(DependencyProvider):
    def setup(self) -> None:
        self.state = State(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> State:
        return self.state
