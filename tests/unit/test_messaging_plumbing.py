"""RPC publishing without confirms, replies encoded once, and the pruning retention rules."""

from __future__ import annotations

import json

import pytest
from nameko.rpc import MethodProxy

from shared.pruning import Retention
from shared.rpc import TRANSIENT, ReplyingRpcConsumer, RpcPublisher, encode_reply


def test_rpc_requests_are_published_without_confirms_and_transient():
    assert MethodProxy.publisher_cls is RpcPublisher
    assert RpcPublisher.use_confirms is False
    assert RpcPublisher.mandatory is False
    assert RpcPublisher.delivery_mode == TRANSIENT


def test_a_reply_is_encoded_once_with_the_requests_serialiser():
    body, ctype, encoding, result, exc_info = encode_reply({"a": 1}, None, "application/json")
    assert ctype == "application/json" and exc_info is None and result == {"a": 1}
    assert json.loads(body) == {"result": {"a": 1}, "error": None}


def test_an_error_reply_carries_the_serialised_exception():
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        info = sys.exc_info()
    body, _, _, result, exc_info = encode_reply(None, info, "application/json")
    error = json.loads(body)["error"]
    assert error["exc_type"] == "ValueError" and error["value"] == "bad"
    assert exc_info is info and result is None


def test_an_unserialisable_result_becomes_nameko_s_unserializable_value_error():
    body, _, _, result, exc_info = encode_reply(object(), None, "application/json")
    assert json.loads(body)["error"]["exc_type"] == "UnserializableValueError"
    assert result is None and exc_info is not None


def test_our_rpc_entrypoints_reply_through_the_encode_once_consumer():
    from shared.rpc import DeadlineRpc

    assert isinstance(DeadlineRpc.rpc_consumer, ReplyingRpcConsumer)


def test_retention_defaults_are_a_week():
    retention = Retention.from_config({})
    assert (retention.outbox_days, retention.inbox_days) == (7.0, 7.0)
    assert retention.batch == 1000 and retention.interval_seconds == 3600


@pytest.mark.parametrize(
    "config",
    [
        {"OUTBOX_RETENTION_DAYS": 7, "INBOX_RETENTION_DAYS": 3},  # shorter than the outbox's
        {
            "OUTBOX_RETENTION_DAYS": 0.01,
            "INBOX_RETENTION_DAYS": 0.02,
            "XIAOPU_EVENT_RETRY_HORIZON_SECONDS": 3600,  # 0.02 days < 1 h of retries
        },
        {"PRUNE_BATCH": 0},
    ],
)
def test_retention_that_could_let_an_event_be_processed_twice_is_refused(config):
    with pytest.raises(ValueError):
        Retention.from_config(config)


def test_retention_comes_from_the_environment_when_the_config_has_none(monkeypatch):
    monkeypatch.setenv("OUTBOX_RETENTION_DAYS", "2")
    monkeypatch.setenv("INBOX_RETENTION_DAYS", "3")
    retention = Retention.from_config({})
    assert (retention.outbox_days, retention.inbox_days) == (2.0, 3.0)
