"""The shared kernel every service builds on: rules from configuration, the thread-safe LRU,
RPC calls with a deadline shorter than their caller's, and validation at the edge."""

from __future__ import annotations

import time
from dataclasses import FrozenInstanceError, dataclass, field
from types import SimpleNamespace

import eventlet
import pytest
from nameko.exceptions import RemoteError, UnknownService
from pydantic import BaseModel, Field, ValidationError

from shared.errors import NotFound, ServiceUnavailable, ValidationFailed
from shared.lru import LRU
from shared.rpc import DEADLINE_KEY, HOP_MARGIN_SECONDS, DeadlineHandle, TimedCalls, UpstreamFailed
from shared.rules import ConfiguredRules
from shared.validation import an_id, field_errors, validated


# --- shared.rules ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleRules(ConfiguredRules):
    max_products: int = 1000
    require_real_name: bool = True
    fee_rate: float = 0.5
    forbidden_words: tuple[str, ...] = ("旗舰", "官方")
    category_deposit_fen: dict[str, int] = field(default_factory=dict)
    name_suffix: str = "小铺"


def test_rules_default_to_the_dataclass_defaults():
    assert SampleRules.from_config(None) == SampleRules()
    assert SampleRules.from_config({}) == SampleRules()
    assert SampleRules.from_config({"RULES": {}}) == SampleRules()


def test_rules_convert_each_value_by_its_annotation():
    rules = SampleRules.from_config(
        {
            "max_products": "1200",
            "require_real_name": "false",
            "fee_rate": "0.25",
            "forbidden_words": "旗舰, 专卖,,official",
            "category_deposit_fen": "food_health=2000000, baby_toys=3000000",
            "name_suffix": "店",
            "not_a_rule": "ignored",
        }
    )
    assert rules == SampleRules(
        max_products=1200,
        require_real_name=False,
        fee_rate=0.25,
        forbidden_words=("旗舰", "专卖", "official"),
        category_deposit_fen={"food_health": 2_000_000, "baby_toys": 3_000_000},
        name_suffix="店",
    )


def test_rules_read_the_rules_block_of_a_whole_service_config_and_yaml_values():
    rules = SampleRules.from_config(
        {
            "AMQP_URI": "amqp://",
            "RULES": {
                "max_products": 7,
                "require_real_name": True,
                "forbidden_words": ["a", " b "],
                "category_deposit_fen": {"food_health": "5"},
            },
        }
    )
    assert rules.max_products == 7
    assert rules.require_real_name is True
    assert rules.forbidden_words == ("a", "b")
    assert rules.category_deposit_fen == {"food_health": 5}


@pytest.mark.parametrize("raw, expected", [("1", True), ("yes", True), ("0", False), ("no", False)])
def test_rules_read_booleans_the_way_the_environment_writes_them(raw, expected):
    assert SampleRules.from_config({"require_real_name": raw}).require_real_name is expected


def test_an_empty_value_keeps_the_default():
    rules = SampleRules.from_config({"max_products": "", "forbidden_words": None})
    assert rules.max_products == 1000
    assert rules.forbidden_words == ("旗舰", "官方")


@pytest.mark.parametrize(
    "key, raw",
    [("max_products", "a thousand"), ("fee_rate", "half"), ("category_deposit_fen", "food=lots")],
)
def test_a_bad_rule_value_stops_the_service_naming_the_rule(key, raw):
    with pytest.raises(SystemExit) as stopped:
        SampleRules.from_config({key: raw})
    assert f"rule {key}={raw!r}" in str(stopped.value)


def test_rules_are_frozen():
    with pytest.raises(FrozenInstanceError):
        SampleRules().max_products = 1  # type: ignore[misc]


# --- shared.lru -----------------------------------------------------------------------------
class FakeTimer:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_least_recently_used_entry_is_evicted_first():
    cache: LRU[str, int] = LRU(maxsize=3)
    for key, value in (("a", 1), ("b", 2), ("c", 3)):
        cache.put(key, value)
    assert cache.get("a") == 1  # a is now the most recent; b the least
    cache.put("d", 4)
    assert "b" not in cache
    assert [cache.get(k) for k in ("a", "c", "d")] == [1, 3, 4]
    cache.put("c", 30)  # a put refreshes too: a is now the least recent
    cache.put("e", 5)
    assert "a" not in cache
    assert len(cache) == 3
    assert cache.get("missing", -1) == -1


def test_entries_expire_after_their_ttl():
    timer = FakeTimer()
    cache: LRU[str, str] = LRU(maxsize=10, ttl=5, timer=timer)
    cache.put("page", "v1")
    timer.now += 5
    assert cache.get("page") == "v1"  # exactly the ttl: still fresh
    timer.now += 0.001
    assert cache.get("page") is None
    assert len(cache) == 0  # an expired entry is dropped, not kept
    cache.put("page", "v2")  # a new put starts a new ttl
    timer.now += 4
    assert cache.get("page") == "v2"


def test_pop_discard_where_and_clear():
    cache: LRU[tuple[str, int], int] = LRU(maxsize=10)
    for n in range(4):
        cache.put(("shop", n), n)
    cache.put(("product", 1), 9)
    assert cache.pop(("shop", 0)) == 0
    assert cache.pop(("shop", 0)) is None
    assert cache.discard_where(lambda k: k[0] == "shop") == 3
    assert len(cache) == 1 and ("product", 1) in cache
    cache.clear()
    assert len(cache) == 0


def test_concurrent_use_keeps_the_cache_consistent():
    """Green threads that switch inside the cache's operations (the timer yields) must not see
    an entry vanish between a lookup and its move_to_end, nor the cache outgrow maxsize."""

    def yielding_timer() -> float:
        eventlet.sleep(0)
        return time.monotonic()

    cache: LRU[int, int] = LRU(maxsize=8, ttl=60, timer=yielding_timer)
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            for i in range(200):
                key = (seed * 7 + i) % 12
                cache.put(key, i)
                cache.get((key + 3) % 12)
                if i % 5 == 0:
                    cache.pop((key + 1) % 12)
                assert len(cache) <= 8
        except BaseException as exc:  # collected: a green thread's failure must fail the test
            errors.append(exc)

    pool = eventlet.GreenPool(16)
    for seed in range(16):
        pool.spawn(worker, seed)
    pool.waitall()
    assert errors == []
    assert len(cache) <= 8


# --- shared.rpc -----------------------------------------------------------------------------
class FakeProxy:
    """An RPC proxy: records what each call saw in the worker context."""

    def __init__(self, worker_ctx, behaviour=None):
        self.worker_ctx = worker_ctx
        self.behaviour = behaviour or (lambda: "answer")
        self.calls: list[tuple[str, float | None]] = []

    def __getattr__(self, method):
        def call(*args, **kwargs):
            self.calls.append((method, self.worker_ctx.data.get(DEADLINE_KEY)))
            return self.behaviour()

        return call


def worker_ctx(deadline_in: float | None = None) -> SimpleNamespace:
    data = {} if deadline_in is None else {DEADLINE_KEY: time.time() + deadline_in}
    return SimpleNamespace(data=data)


def test_the_budget_never_exceeds_the_callers_remaining_deadline_minus_the_margin():
    handle = DeadlineHandle(worker_ctx(deadline_in=1.0), fallback=5.0)
    assert handle.budget() <= 1.0 - HOP_MARGIN_SECONDS
    assert handle.budget(timeout=60) <= 1.0 - HOP_MARGIN_SECONDS  # a longer own timeout too
    assert handle.budget(timeout=0.1) == pytest.approx(0.1)  # a shorter one is kept
    no_caller = DeadlineHandle(worker_ctx(), fallback=5.0)
    assert no_caller.budget() == 5.0 and no_caller.budget(timeout=60) == 60


def test_a_slow_callee_is_given_up_on_before_the_callers_deadline():
    ctx = worker_ctx(deadline_in=1.0)
    handle = DeadlineHandle(ctx, fallback=5.0)
    proxy = FakeProxy(ctx, behaviour=lambda: eventlet.sleep(10))
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as failed:
        handle.call(proxy, "catalog", timeout=30).get_products([1])
    assert time.monotonic() - started < 1.0 - HOP_MARGIN_SECONDS + 0.2
    assert failed.value.details == {"service": "catalog"}


def test_an_expired_deadline_fails_without_calling():
    ctx = worker_ctx(deadline_in=-0.5)
    proxy = FakeProxy(ctx)
    handle = DeadlineHandle(ctx, fallback=5.0)
    assert handle.expired()
    with pytest.raises(ServiceUnavailable) as failed:
        handle.call(proxy, "shop").get_shop(1)
    assert failed.value.code == "deadline_exceeded"
    assert failed.value.details == {"service": "shop"}
    assert proxy.calls == []


def test_the_deadline_travels_in_the_context_during_the_call_and_is_restored_after():
    ctx = worker_ctx()
    proxy = FakeProxy(ctx)
    before = time.time()
    assert DeadlineHandle(ctx, fallback=5.0).call(proxy, "shop").get_shop(1) == "answer"
    ((_, seen),) = proxy.calls
    assert before + 5.0 <= seen <= time.time() + 5.0  # the callee sees how long we wait
    assert DEADLINE_KEY not in ctx.data  # and none is left behind

    ctx = worker_ctx(deadline_in=2.0)
    callers = ctx.data[DEADLINE_KEY]
    proxy = FakeProxy(ctx)
    DeadlineHandle(ctx, fallback=5.0).call(proxy, "shop").get_shop(1)
    ((_, seen),) = proxy.calls
    assert seen <= callers - HOP_MARGIN_SECONDS + 0.01  # shorter than the caller's
    assert ctx.data[DEADLINE_KEY] == callers  # the caller's deadline is back


def test_a_failed_call_restores_the_callers_deadline_too():
    ctx = worker_ctx(deadline_in=2.0)
    callers = ctx.data[DEADLINE_KEY]

    def boom():
        raise NotFound("shop 1 not found", code="shop_not_found")

    with pytest.raises(NotFound):  # a domain error passes through as itself
        DeadlineHandle(ctx, fallback=5.0).call(FakeProxy(ctx, boom), "shop").get_shop(1)
    assert ctx.data[DEADLINE_KEY] == callers


def test_a_missing_service_is_unavailable_and_a_remote_crash_is_upstream_failed():
    def missing():
        raise UnknownService("shop")

    def crash():
        raise RemoteError("KeyError", "'x'")

    with pytest.raises(ServiceUnavailable, match="not running"):
        TimedCalls(FakeProxy(worker_ctx(), missing), "shop", lambda: 1.0).get_shop(1)
    with pytest.raises(UpstreamFailed) as failed:
        TimedCalls(FakeProxy(worker_ctx(), crash), "shop", lambda: 1.0).get_shop(1)
    assert failed.value.status == 500
    assert failed.value.details == {"service": "shop"}


# --- shared.validation ----------------------------------------------------------------------
class Contact(BaseModel):
    phone: str = Field(min_length=11, max_length=11)


class SupplierSample(BaseModel):
    name: str = Field(min_length=1)
    capital_fen: int = Field(ge=0)
    contact: Contact


def test_validated_returns_the_model():
    body = validated(
        SupplierSample, {"name": "阿花", "capital_fen": 1, "contact": {"phone": "13800000000"}}
    )
    assert body.contact.phone == "13800000000"


def test_validation_fails_with_422_naming_every_field():
    with pytest.raises(ValidationFailed) as failed:
        validated(SupplierSample, {"name": "", "capital_fen": -1, "contact": {"phone": "1"}})
    assert failed.value.status == 422
    assert [d["field"] for d in failed.value.details] == ["name", "capital_fen", "contact.phone"]
    assert all(d["message"] for d in failed.value.details)
    assert isinstance(failed.value.__cause__, ValidationError)


def test_a_missing_body_counts_as_empty():
    with pytest.raises(ValidationFailed) as failed:
        validated(SupplierSample, None)
    assert {d["field"] for d in failed.value.details} == {"name", "capital_fen", "contact"}


def test_field_errors_name_the_body_when_the_error_has_no_location():
    with pytest.raises(ValidationError) as raised:
        Contact.model_validate("not an object")
    assert field_errors(raised.value) == [
        {"field": "body", "message": raised.value.errors()[0]["msg"]}
    ]


@pytest.mark.parametrize("value, expected", [(12, 12), ("12", 12)])
def test_an_id_accepts_integers_and_their_digits(value, expected):
    assert an_id(value, "order") == expected


@pytest.mark.parametrize("value", [True, -1, "-1", "12a", "", None, 1.5, [1]])
def test_an_id_that_names_nothing_is_a_404(value):
    with pytest.raises(NotFound) as failed:
        an_id(value, "order")
    assert failed.value.code == "order_not_found"
