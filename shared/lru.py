"""A small thread-safe LRU cache (optionally with a time-to-live), for per-process caches of
rendered views, facts and images. Safe under eventlet: the lock is green once monkey-patched,
and no operation yields while holding it."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    def __init__(
        self,
        maxsize: int = 128,
        ttl: float | None = None,
        timer: Callable[[], float] = time.monotonic,
    ):
        self.maxsize = maxsize
        self.ttl = ttl
        self._timer = timer
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            found = self._data.get(key)
            if found is None:
                return default
            stored_at, value = found
            if self.ttl is not None and self._timer() - stored_at > self.ttl:
                del self._data[key]
                return default
            self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = (self._timer(), value)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def pop(self, key: K) -> V | None:
        with self._lock:
            found = self._data.pop(key, None)
            return None if found is None else found[1]

    def discard_where(self, predicate: Callable[[K], bool]) -> int:
        """Drop every entry whose key matches; returns how many were dropped."""
        with self._lock:
            gone = [k for k in self._data if predicate(k)]
            for k in gone:
                del self._data[k]
            return len(gone)

    def discard_items_where(self, predicate: Callable[[K, V], bool]) -> int:
        """Drop every entry whose key and value match; returns how many were dropped."""
        with self._lock:
            gone = [k for k, (_, v) in self._data.items() if predicate(k, v)]
            for k in gone:
                del self._data[k]
            return len(gone)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]
