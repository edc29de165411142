"""A packed message (``shared.outbox``'s packed streams) is unpacked into its events, each with a
stand-in for its message; the message is settled once, when its last event is: acked, or
requeued if any of its events was (``shared.events``)."""

from __future__ import annotations

import json

import pytest

from shared.events import PACK_HEADER, unpacked


class FakeMessage:
    def __init__(self, headers: dict):
        self.headers = headers
        self.channel = object()
        self.content_type = "application/json"
        self.content_encoding = "utf-8"
        self.settled: list[str] = []

    def ack(self) -> None:
        self.settled.append("ack")

    def requeue(self) -> None:
        self.settled.append("requeue")


EVENTS = [{"id": f"e{n}", "correlation_id": f"req-{n}", "data": {"n": n}} for n in range(3)]


def test_a_plain_message_is_one_event_with_itself():
    message = FakeMessage({"nameko.correlation_id": "req-0"})
    assert unpacked(EVENTS[0], message) == [(EVENTS[0], message)]


def test_a_list_without_the_pack_header_is_not_a_pack():
    message = FakeMessage({})
    assert unpacked(EVENTS, message) == [(EVENTS, message)]


def test_each_event_of_a_pack_gets_its_own_headers_and_body():
    message = FakeMessage({PACK_HEADER: 3, "nameko.correlation_id": "req-0", "other": "x"})
    events = unpacked(EVENTS, message)
    assert [event for event, _ in events] == EVENTS
    assert [d.headers for _, d in events] == [
        {"nameko.correlation_id": f"req-{n}", "other": "x"} for n in range(3)
    ]
    assert [json.loads(d.body) for _, d in events] == EVENTS  # what a retry republishes
    assert events[0][1].content_type == "application/json"


@pytest.mark.parametrize(
    "outcomes, settled",
    [
        (["ack", "ack", "ack"], ["ack"]),
        (["ack", "requeue", "ack"], ["requeue"]),
    ],
)
def test_the_message_is_settled_once_when_its_last_event_is(outcomes, settled):
    message = FakeMessage({PACK_HEADER: 3})
    deliveries = [d for _, d in unpacked(EVENTS, message)]
    for n, (delivery, outcome) in enumerate(zip(deliveries, outcomes, strict=True)):
        getattr(delivery, outcome)()
        assert message.settled == ([] if n < 2 else settled)


def test_an_empty_pack_is_acked_at_once():
    message = FakeMessage({PACK_HEADER: 0})
    assert unpacked([], message) == []
    assert message.settled == ["ack"]
