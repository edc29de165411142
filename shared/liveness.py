"""Each process checks itself: liveness and readiness of THIS instance, not "any instance on
the queue".

``Heartbeat`` (declared on ``PlatformRpc`` and the gateway) runs a green thread in the service
process that every ``XIAOPU_HEARTBEAT_SECONDS`` (5) checks

* ``consumers``: this process' own AMQP consumers (nameko's queue consumer thread is alive, its
  consumers are set up and their channels open: it is connected to the broker and consuming);
* ``broker``: the broker answers a fresh connection (the one the heartbeat publishes with);
* ``database``: ``SELECT 1`` through the service's own pool (domain services);

and writes the result, atomically, to ``XIAOPU_STATE_DIR/<service>-<pid>.json`` (``shared.
instance``): ``{"service", "instance", "pid", "at", "ready", "checks"}``; the file is removed when
the service stops. ``python -m shared.healthcheck <service>`` reads the file of its own instance:
*live* when the file is fresh (written within three intervals: a hung process stops writing) and
its pid is running, *ready* when live and every check passed. A file-based heartbeat was chosen
over an instance-addressed RPC queue because it needs no broker round trip to answer "is THIS
process well" (a container healthcheck, an orchestrator probe), it sees a hung event loop (the
file goes stale) and it works when the broker is the thing that is down (then it says so).

The same beat is published on the fanout exchange ``xiaopu.instances`` (a transient message with
a short expiry): every gateway keeps the last beat of each instance (``InstanceRegistry``) and
``GET /api/v1/health`` lists the instances of each service with their readiness.

Each beat also carries the instance's clock (``clock: {now, version}``, shared.clock): when the
test clock moves, the instance beats at once, so the gateway that moved it sees every instance
confirm the move (shared.clocksync) and health shows each instance's time.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import eventlet
from eventlet.queue import Empty, LightQueue
from kombu import Connection, Exchange, Producer, Queue
from nameko.extensions import DependencyProvider
from nameko.messaging import QueueConsumer

from shared import clock
from shared.instance import instance_id, setting, state_dir, state_file

log = logging.getLogger(__name__)

INSTANCES_EXCHANGE = Exchange("xiaopu.instances", type="fanout", durable=False)
DEFAULT_INTERVAL = 5.0
STALE_AFTER_BEATS = 3


def interval_of(config: dict) -> float:
    return float(setting(config, "XIAOPU_HEARTBEAT_SECONDS", str(DEFAULT_INTERVAL)))


def consumers_running(container: Any) -> tuple[bool, str]:
    """Whether this container's queue consumers are running and connected."""
    found = [ext for ext in container.subextensions if isinstance(ext, QueueConsumer)]
    for qc in found:
        gt = getattr(qc, "_gt", None)
        if gt is None or gt.dead:
            return False, "the queue consumer thread is not running"
        if not qc._consumers_ready.ready():
            return False, "the consumers are not set up yet"
        for consumer in list(qc._consumers.values()):
            channel = getattr(consumer, "channel", None)
            if channel is None or not getattr(channel, "is_open", False):
                return False, "a consumer's channel to the broker is closed"
    return True, f"{len(found)} queue consumer(s)"


def _quietly(fn: Any) -> None:
    try:
        fn()
    except Exception:
        log.debug("closing a broken broker connection", exc_info=True)


def write_atomically(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class Heartbeat(DependencyProvider):
    def setup(self) -> None:
        config = self.container.config
        self.service = self.container.service_name
        self.instance = instance_id(config)
        self.interval = interval_of(config)
        self.path = state_file(state_dir(config), self.service, os.getpid())
        self.amqp_uri = config.get("AMQP_URI", "")
        self._running = False
        self.last: dict = {}
        self._wakeups: LightQueue = LightQueue()

    def start(self) -> None:
        self._running = True
        clock.on_change(self.wake)
        self.container.spawn_managed_thread(self._run)

    def wake(self) -> None:
        """Beat now rather than at the end of the interval (the clock moved)."""
        self._wakeups.put(None)

    def stop(self) -> None:
        self._running = False
        clock.remove_listener(self.wake)
        self._wakeups.put(None)
        try:
            self.path.unlink()
        except OSError:
            pass

    def kill(self) -> None:
        self.stop()

    def _database(self) -> Any:
        from shared.db import Database

        return next((d for d in self.container.dependencies if isinstance(d, Database)), None)

    def check(self, connection: Connection | None) -> dict[str, str]:
        checks: dict[str, str] = {}
        ok, why = consumers_running(self.container)
        checks["consumers"] = "ok" if ok else f"failed: {why}"
        try:
            if connection is None:
                raise ConnectionError("no broker connection")
            with eventlet.Timeout(max(2.0, self.interval)):
                connection.ensure_connection(max_retries=1)
                INSTANCES_EXCHANGE(connection.default_channel).declare()  # a round trip
            checks["broker"] = "ok"
        except (Exception, eventlet.Timeout) as exc:
            checks["broker"] = f"failed: {exc}"
            if connection is not None:
                _quietly(connection.collect)  # reconnect on the next beat
        database = self._database()
        if database is not None:
            try:
                from sqlalchemy import text

                with eventlet.Timeout(max(1.0, self.interval)):
                    with database.engine.connect() as conn:
                        conn.execute(text("SELECT 1"))
                checks["database"] = "ok"
            except (Exception, eventlet.Timeout) as exc:
                checks["database"] = f"failed: {str(exc).splitlines()[0][:200]}"
        return checks

    def beat(self, connection: Connection | None) -> dict:
        checks = self.check(connection)
        state = {
            "service": self.service,
            "instance": self.instance,
            "pid": os.getpid(),
            "at": time.time(),
            "interval": self.interval,
            "ready": all(v == "ok" for v in checks.values()),
            "checks": checks,
            "clock": {"now": clock.iso(clock.now()), "version": clock.version()},
        }
        self.last = state
        try:
            write_atomically(self.path, state)
        except OSError as exc:
            log.warning("cannot write the heartbeat file %s: %s", self.path, exc)
        if connection is not None and checks.get("broker") == "ok":
            try:
                with eventlet.Timeout(2):
                    Producer(connection.default_channel).publish(
                        state,
                        exchange=INSTANCES_EXCHANGE,
                        serializer="json",
                        expiration=self.interval * STALE_AFTER_BEATS,
                    )
            except (Exception, eventlet.Timeout) as exc:  # the registry is a report only
                log.debug("heartbeat publish failed: %s", exc)
        return state

    def _run(self) -> None:
        connection = Connection(self.amqp_uri, connect_timeout=2) if self.amqp_uri else None
        try:
            while self._running:
                try:
                    self.beat(connection)
                except Exception:  # never let the beat die: a dead beat reads as a hung process
                    log.exception("heartbeat check failed")
                try:
                    self._wakeups.get(timeout=self.interval)
                    while not self._wakeups.empty():  # several wake-ups: one beat
                        self._wakeups.get_nowait()
                except Empty:
                    pass
        finally:
            if connection is not None:
                connection.release()

    def get_dependency(self, worker_ctx: Any) -> dict:
        return self.last


# -- reading a heartbeat (python -m shared.healthcheck) ------------------------------------------
def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not running
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def read_states(directory: Path, service: str) -> list[dict]:
    states = []
    for path in sorted(directory.glob(f"{service}-*.json")):
        try:
            states.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return states


def verdict(state: dict | None, now: float | None = None, need_ready: bool = True) -> str | None:
    """None when the instance is well (live, and ready if ``need_ready``), else why not."""
    if state is None:
        return "no heartbeat file for this instance"
    now = time.time() if now is None else now
    if not pid_running(int(state.get("pid", 0))):
        return f"process {state.get('pid')} is not running"
    age = now - float(state.get("at", 0))
    limit = float(state.get("interval", DEFAULT_INTERVAL)) * STALE_AFTER_BEATS
    if age > limit:
        return f"the last heartbeat is {age:.0f}s old (hung?)"
    if need_ready and not state.get("ready"):
        failed = {k: v for k, v in (state.get("checks") or {}).items() if v != "ok"}
        return f"not ready: {failed}"
    return None


class InstanceRegistry(DependencyProvider):
    """The gateway's view of every instance's last heartbeat (from the ``xiaopu.instances``
    fanout, through an exclusive auto-deleted queue of this gateway process)."""

    def setup(self) -> None:
        self.amqp_uri = self.container.config.get("AMQP_URI", "")
        self.beats: dict[tuple[str, str], dict] = {}
        self._running = False

    def start(self) -> None:
        self._running = True
        self.container.spawn_managed_thread(self._run)

    def stop(self) -> None:
        self._running = False

    def kill(self) -> None:
        self.stop()

    def _on_beat(self, body: Any, message: Any) -> None:
        if isinstance(body, dict) and body.get("service") and body.get("instance"):
            body["seen"] = time.time()
            self.beats[(body["service"], body["instance"])] = body
        message.ack()

    def _run(self) -> None:
        while self._running:
            try:
                with Connection(self.amqp_uri, connect_timeout=3) as conn:
                    queue = Queue(
                        exchange=INSTANCES_EXCHANGE, exclusive=True, auto_delete=True, durable=False
                    )
                    with conn.Consumer([queue], callbacks=[self._on_beat], accept=["json"]):
                        while self._running:
                            try:
                                conn.drain_events(timeout=1)
                            except TimeoutError:
                                continue
            except Exception as exc:
                log.debug("instance registry: %s; reconnecting", exc)
                eventlet.sleep(2)

    def instances(self, services: tuple[str, ...]) -> dict[str, list[dict]]:
        now = time.time()
        out: dict[str, list[dict]] = {s: [] for s in services}
        for (service, instance), beat in list(self.beats.items()):
            limit = float(beat.get("interval", DEFAULT_INTERVAL)) * STALE_AFTER_BEATS
            if now - beat["seen"] > limit:
                self.beats.pop((service, instance), None)  # gone: no beat for three intervals
                continue
            out.setdefault(service, []).append(
                {
                    "instance": instance,
                    "ready": bool(beat.get("ready")),
                    "checks": beat.get("checks", {}),
                    "age_seconds": round(now - float(beat.get("at", now)), 1),
                    "pid": beat.get("pid"),
                    "clock": beat.get("clock"),
                }
            )
        for entries in out.values():
            entries.sort(key=lambda e: e["instance"])
        return out

    def unconfirmed_clock(self, services: tuple[str, ...], version: int) -> list[str]:
        """Live instances of ``services`` whose last beat shows a clock older than
        ``version`` (shared.clocksync waits until none is left)."""
        late = []
        for service, entries in self.instances(services).items():
            for entry in entries:
                if int((entry.get("clock") or {}).get("version") or 0) < version:
                    late.append(f"{service}/{entry['instance']}")
        return sorted(late)

    def get_dependency(self, worker_ctx: Any) -> "InstanceRegistry":
        return self
