"""Which instance of a service this process is, and where it keeps its state files.

Several processes may run one service (the documented way to scale nameko): each one is an
*instance*, named by ``XIAOPU_INSTANCE_ID`` or, by default, ``<hostname>:<pid>``. The id goes on
every log line (``shared.logs``), on every metric (``shared.metrics``), into the service's
``health`` answer and into its heartbeat file (``shared.liveness``), read by
``python -m shared.healthcheck``.

``XIAOPU_STATE_DIR`` (default ``var/run`` under the project, ``/tmp/xiaopu`` when that is not
writable) holds one heartbeat file per running instance: ``<service>-<pid>.json``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def instance_id(config: Any = None) -> str:
    """``XIAOPU_INSTANCE_ID`` (the service's config, then the environment), else host:pid."""
    return setting(config, "XIAOPU_INSTANCE_ID") or f"{socket.gethostname()}:{os.getpid()}"


def state_dir(config: Any = None) -> Path:
    path = Path(setting(config, "XIAOPU_STATE_DIR", "var/run"))
    if not path.is_absolute():
        path = ROOT / path
    return path


def state_file(directory: Path, service: str, pid: int) -> Path:
    return directory / f"{service}-{pid}.json"


def setting(config: Any, key: str, default: str = "") -> str:
    """An operations setting: the service's config (tests pass overrides there), else the
    environment (``make run``, compose), else ``default``. These keys are not rules, so they
    live in no service's config.yml."""
    value = config.get(key) if isinstance(config, dict) else None
    if value is None or str(value).strip() == "":
        value = os.environ.get(key, "")
    return str(value).strip() or default
