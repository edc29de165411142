"""The supervisor's restart policy (scripts/launcher.Supervisor) on fake processes and a fake
clock: back-off doubling to a ceiling, reset once a process stays up, giving up on a crash loop."""

from __future__ import annotations

import pytest

from scripts import launcher
from scripts.launcher import PlatformFailed, Supervisor


class FakeProc:
    next_pid = 100

    def __init__(self):
        FakeProc.next_pid += 1
        self.pid = FakeProc.next_pid
        self.returncode: int | None = None

    def poll(self):
        return self.returncode


class FakePlatform:
    def __init__(self, names=("orders", "gateway")):
        self.procs = {n: FakeProc() for n in names}
        self.started: list[str] = []

    def start_service(self, name):
        self.procs[name] = FakeProc()
        self.started.append(name)


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(launcher.time, "monotonic", lambda: now[0])
    return now


def crash_and_wait_for_restart(sup, platform, clock, name="orders", code=-9) -> float:
    """Crash ``name``; return how long the supervisor waited before starting it again."""
    platform.procs[name].returncode = code
    sup.check()
    began = clock[0]
    restarts = len(platform.started)
    while len(platform.started) == restarts:
        clock[0] += 0.5
        sup.check()
        assert clock[0] - began < 120, "never restarted"
    return clock[0] - began


def test_a_crashed_service_is_restarted_with_doubling_back_off_up_to_a_ceiling(clock):
    platform = FakePlatform()
    said: list[str] = []
    sup = Supervisor(platform, max_delay=8.0, max_failures=10, say=said.append)
    first_orders, gateway = platform.procs["orders"].pid, platform.procs["gateway"].pid
    waits = [crash_and_wait_for_restart(sup, platform, clock) for _ in range(5)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert platform.started == ["orders"] * 5
    assert said[0] == f"the orders process (pid {first_orders}) exited with -9; restarting it in 1s"
    assert platform.procs["gateway"].pid == gateway  # the others are left alone


def test_the_back_off_resets_once_the_service_stays_up(clock):
    platform = FakePlatform()
    sup = Supervisor(platform, stable_after=60.0, say=lambda _: None)
    assert crash_and_wait_for_restart(sup, platform, clock) == 1.0
    assert crash_and_wait_for_restart(sup, platform, clock) == 2.0
    clock[0] += 61
    sup.check()  # seen up for longer than stable_after
    assert crash_and_wait_for_restart(sup, platform, clock) == 1.0


def test_a_service_that_keeps_crashing_fails_the_platform(clock):
    platform = FakePlatform()
    sup = Supervisor(platform, max_failures=3, say=lambda _: None)
    for _ in range(3):
        crash_and_wait_for_restart(sup, platform, clock, code=1)
    platform.procs["orders"].returncode = 1
    with pytest.raises(PlatformFailed, match="the orders process keeps exiting"):
        sup.check()
