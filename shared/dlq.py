"""Operator tool for parked events: ``python -m shared.dlq list`` / ``python -m shared.dlq replay``.

Lists every ``*.dead`` queue of the vhost (through the RabbitMQ management API) with the
parked messages' event type, id, attempts and error; ``replay [QUEUE]`` moves them back into
the queue they came from with a fresh attempt count.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from urllib.parse import quote, urlparse

import requests
from kombu import Connection, Exchange

from shared.events import ATTEMPTS_HEADER, ERROR_HEADER, FIRST_FAILED_HEADER, ORIGIN_HEADER


def _mgmt(amqp_uri: str):
    url = urlparse(amqp_uri)
    vhost = url.path[1:] or "/"
    base = os.environ.get("RABBIT_MANAGEMENT_URL", f"http://{url.hostname or '127.0.0.1'}:15672")
    return base, (url.username or "guest", url.password or "guest"), vhost


def dead_queues(amqp_uri: str) -> list[dict]:
    base, auth, vhost = _mgmt(amqp_uri)
    resp = requests.get(f"{base}/api/queues/{quote(vhost, safe='')}", auth=auth, timeout=5)
    resp.raise_for_status()
    return [q for q in resp.json() if q["name"].endswith(".dead")]


def drain(amqp_uri: str, queue: str, replay: bool) -> list[dict]:
    seen = []
    with Connection(amqp_uri) as conn:
        simple = conn.SimpleQueue(
            queue, no_ack=False, serializer="json", queue_opts={"durable": True}
        )
        producer = conn.Producer()
        while True:
            try:
                msg = simple.get(block=False)
            except simple.Empty:
                break
            headers = dict(msg.headers or {})
            body = msg.payload
            seen.append(
                {
                    "queue": queue,
                    "event_id": body.get("id") if isinstance(body, dict) else None,
                    "type": body.get("type") if isinstance(body, dict) else None,
                    "attempts": headers.get(ATTEMPTS_HEADER),
                    "error": headers.get(ERROR_HEADER),
                }
            )
            if replay:
                origin = headers.get(ORIGIN_HEADER) or queue[: -len(".dead")]
                headers[ATTEMPTS_HEADER] = 0
                headers.pop(FIRST_FAILED_HEADER, None)  # a fresh retry horizon
                producer.publish(
                    msg.body,
                    exchange=Exchange(""),
                    routing_key=origin,
                    headers=headers,
                    content_type=msg.content_type,
                    content_encoding=msg.content_encoding,
                    delivery_mode=2,
                )
                msg.ack()
        if not replay:
            simple.channel.basic_recover(requeue=True)
        simple.close()
    return seen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["list", "replay"])
    parser.add_argument("queue", nargs="?", help="one *.dead queue (default: all)")
    parser.add_argument(
        "--amqp-uri", default=os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
    )
    args = parser.parse_args(argv)
    queues = [args.queue] if args.queue else [q["name"] for q in dead_queues(args.amqp_uri)]
    total = []
    for q in queues:
        total += drain(args.amqp_uri, q, replay=args.action == "replay")
    json.dump(total, sys.stdout, ensure_ascii=False, indent=2)
    print(f"\n{len(total)} parked event(s) {'replayed' if args.action == 'replay' else 'found'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
