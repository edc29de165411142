"""Container health check: ``python -m shared.healthcheck <service>``.

A domain service is healthy when it answers its ``health`` RPC (database reachable); the
gateway when it serves its OpenAPI document. Exit 0 healthy, 1 not.
"""

from __future__ import annotations

import sys
import urllib.request


def main(argv=None) -> int:
    argv = argv if argv is not None else sys.argv[1:]
    service = argv[0] if argv else "gateway"
    from shared.config import load_config

    config = load_config(service)
    try:
        if service == "gateway":
            address = config["WEB_SERVER_ADDRESS"].replace("0.0.0.0", "127.0.0.1")
            with urllib.request.urlopen(f"http://{address}/api/v1/openapi.json", timeout=5):
                return 0
        import eventlet
        from nameko.standalone.rpc import ClusterRpcProxy

        with eventlet.Timeout(10):
            with ClusterRpcProxy(config) as cluster:
                answer = getattr(cluster, service).health()
        return 0 if answer.get("status") == "ok" else 1
    except Exception as exc:  # any failure means unhealthy; say why
        print(f"{service} unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
