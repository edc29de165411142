"""``make run``: migrations, six services and the gateway as separate processes; Ctrl-C stops
all."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.launcher import ROOT, Platform, ensure_broker, secret_file  # noqa: E402


def main() -> int:
    amqp_uri = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
    ensure_broker(amqp_uri)
    var = ROOT / "var"
    (var / "data").mkdir(parents=True, exist_ok=True)
    admin = secret_file(var / "admin.token", "XIAOPU_ADMIN_TOKEN")
    secret = secret_file(var / "secret.key", "XIAOPU_SECRET_KEY")
    platform = Platform({"XIAOPU_ADMIN_TOKEN": admin, "XIAOPU_SECRET_KEY": secret})

    def shutdown(signum, frame):
        print("\nstopping Xiaopu ...", flush=True)
        platform.stop()
        sys.exit(0)

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    print(
        "migrating and starting catalog, shop, share, orders, payouts, identity "
        "and the gateway ...",
        flush=True,
    )
    platform.start()
    print(
        f"\nXiaopu is up: gateway on {platform.base_url}  (health: "
        f"{platform.base_url}/api/v1/health, API: {platform.base_url}/api/v1/openapi.json)\n"
        f"admin token: {admin}  (also in var/admin.token)\nCtrl-C stops everything.",
        flush=True,
    )
    platform.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
