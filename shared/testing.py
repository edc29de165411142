"""Helpers for the test suites of every service (nameko ships ``nameko.testing`` the same way)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(fn: Callable[[], T], timeout: float = 20.0, interval: float = 0.1) -> T:
    """Call ``fn`` until it returns something truthy and return that; fail the test with the
    last value after ``timeout`` seconds. For effects that arrive asynchronously (events,
    relays, timers): a deadline, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        time.sleep(interval)
