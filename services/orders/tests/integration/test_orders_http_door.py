"""Checkout and pay reach orders over its HTTP door (shared/httprpc.py), not RabbitMQ: what a
client sees must not change — errors keep their envelope, a 503 still means nothing happened, a
service that is down answers 503 at once, and a rolling restart of two instances loses no
request."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection

import orders_support as sup
import pytest
import requests
from sqlalchemy import create_engine, text

from shared.httprpc import CONTEXT_HEADER, KEY_HEADER, InternalWebServer, door_key

pytestmark = pytest.mark.integration

BUYER = 41
ADDRESS = {"name": "张三", "phone": "13812345678", "line": "上海市黄浦区某路1号"}


def checkout(env, buyer=BUYER, key=None):
    body = {"items": [{"product_id": 101, "quantity": 1}], "address": ADDRESS}
    headers = {"Idempotency-Key": key} if key else None
    return env.post("/api/v1/orders", json=body, role="member", sub=buyer, headers=headers)


def door(env) -> tuple[str, int]:
    host, port = env.orders.config["XIAOPU_HTTP_RPC_ADDRESS"].rsplit(":", 1)
    return host, int(port)


def post_door(env, method: str, args: list, context: dict, key: str | None) -> tuple[int, bytes]:
    """One call straight to the door, as the gateway makes it (``key``: the door key shown)."""
    headers = {"Content-Type": "application/json", CONTEXT_HEADER: json.dumps(context)}
    if key is not None:
        headers[KEY_HEADER] = key
    conn = HTTPConnection(*door(env), timeout=15)
    try:
        conn.request("POST", f"/rpc/{method}", json.dumps({"args": args, "kwargs": {}}), headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def call_door(env, method: str, args: list, context: dict) -> dict:
    status, body = post_door(env, method, args, context, door_key(env.orders.config))
    assert status == 200, body
    return json.loads(body)


def orders_in_db(env) -> int:
    engine = create_engine(env.db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM orders")).scalar_one()
    finally:
        engine.dispose()


def test_errors_over_the_door_keep_their_envelope(env, catalog_world):
    order = checkout(env).json()["orders"][0]
    stranger = env.post(f"/api/v1/orders/{order['id']}/pay", role="member", sub=99)
    assert stranger.status_code == 404, stranger.text  # someone else's order: as if absent
    assert stranger.json()["error"]["code"] == "order_not_found"
    bad = env.post(
        "/api/v1/orders",
        json={"items": [{"product_id": 101, "quantity": 0}], "address": ADDRESS},
        role="member",
        sub=BUYER,
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_failed"
    paid = env.post(f"/api/v1/orders/{order['id']}/pay", role="member", sub=BUYER)
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    again = env.post(f"/api/v1/orders/{order['id']}/pay", role="member", sub=BUYER)
    assert again.status_code == 200 and again.json()["status"] == "paid"  # once, answered twice
    sup.wait_for(lambda: len(sup.events("order_paid")) == 1)


def test_a_call_past_its_deadline_is_refused_before_any_work(env, catalog_world):
    body = {"items": [{"product_id": 101, "quantity": 1}], "address": ADDRESS}
    late = call_door(env, "checkout", [BUYER, body, "late-key"], {"xp_deadline": time.time() - 1})
    assert late["result"] is None
    assert late["error"]["exc_type"] == "ServiceUnavailable"
    assert "deadline passed before the work started" in late["error"]["value"]
    in_time = call_door(
        env, "checkout", [BUYER, body, "in-time-key"], {"xp_deadline": time.time() + 10}
    )
    assert in_time["error"] is None and len(in_time["result"]["orders"]) == 1
    assert orders_in_db(env) == 1  # the late one wrote nothing


def test_orders_down_answers_503_at_once_and_nothing_is_written(env, catalog_world):
    assert checkout(env).status_code == 201
    env.orders.stop()
    r = checkout(env, key="while-down")
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    # refused at connect: "not running", not "did not answer within …" (the deadline's wait)
    assert error["details"]["service"] == "orders" and "not running" in error["message"]
    env.orders = env._start_orders()
    assert orders_in_db(env) == 1
    retried = checkout(env, key="while-down")  # the client's retry, same key: it happens now
    assert retried.status_code == 201, retried.text
    assert orders_in_db(env) == 2


def test_a_rolling_restart_of_two_instances_loses_no_checkout(env, catalog_world):
    sup.add_product(303, 7, price_fen=100, stock=10_000, commission_bps=0)
    second = env._start_orders()  # the same door (SO_REUSEPORT) and database
    stop = threading.Event()
    statuses: list[int] = []
    lock = threading.Lock()

    def buyer(n: int) -> None:
        while not stop.is_set():
            body = {"items": [{"product_id": 303, "quantity": 1}], "address": ADDRESS}
            r = env.post("/api/v1/orders", json=body, role="member", sub=1000 + n)
            with lock:
                statuses.append(r.status_code)

    with ThreadPoolExecutor(4) as pool:
        for n in range(4):
            pool.submit(buyer, n)
        sup.wait_for(lambda: len(statuses) >= 20, timeout=30)
        env.orders.stop()  # the first instance goes away while checkouts keep coming
        before = len(statuses)
        sup.wait_for(lambda: len(statuses) >= before + 20, timeout=30)
        env.orders = env._start_orders()  # and comes back beside the second
        second.stop()
        before = len(statuses)
        sup.wait_for(lambda: len(statuses) >= before + 20, timeout=30)
        stop.set()
    assert set(statuses) == {201}, sorted(set(statuses))
    assert orders_in_db(env) == len(statuses)  # every answered checkout, each once


def test_the_door_lets_in_only_callers_that_show_its_key(env, catalog_world):
    body = {"items": [{"product_id": 101, "quantity": 1}], "address": ADDRESS}
    soon = {"xp_deadline": time.time() + 10}
    for key in (None, "", "not-the-key", door_key({"AMQP_URI": "amqp://other@elsewhere/"})):
        status, answer = post_door(env, "checkout", [BUYER, body, f"k-{key}"], soon, key)
        assert status == 403, (key, status, answer)
    assert orders_in_db(env) == 0  # none of them reached the method
    ok = call_door(env, "checkout", [BUYER, body, "k-ok"], soon)
    assert ok["error"] is None and orders_in_db(env) == 1


def test_calls_reuse_the_gateways_kept_alive_connection(env, catalog_world):
    """One connection carries call after call: no handshake per call."""
    (server,) = [x for x in env.orders.subextensions if isinstance(x, InternalWebServer)]
    url = f"{env.url}/api/v1/echo/orders"
    assert requests.get(url, timeout=15).status_code == 200
    opened = server.accepted
    session = requests.Session()
    for i in range(20):
        answer = session.get(url, params={"q": f"n{i}"}, timeout=15)
        assert answer.status_code == 200 and answer.json() == {"echo": f"n{i}"}
    assert server.accepted == opened
