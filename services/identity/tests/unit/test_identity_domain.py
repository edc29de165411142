"""The sign-in rules of PRODUCT.md, tested on the pure domain module."""

from datetime import UTC, datetime, timedelta

import pytest

from identity import domain
from identity.domain import IdentityRules
from shared.errors import ValidationFailed

RULES = IdentityRules()
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_rules_have_the_product_defaults_and_come_from_config():
    assert (RULES.code_length, RULES.code_ttl_seconds, RULES.max_attempts) == (6, 300, 5)
    rules = IdentityRules.from_config({"RULES": {"code_ttl_seconds": "120", "max_attempts": 3}})
    assert (rules.code_ttl_seconds, rules.max_attempts) == (120, 3)


def test_a_code_is_six_digits_and_stored_only_as_a_keyed_hash():
    code = domain.new_code(RULES)
    assert len(code) == 6 and code.isdigit()
    stored = domain.hash_code("secret", "13800000000", "member", code)
    assert code not in stored
    assert domain.code_matches("secret", "13800000000", "member", code, stored)
    assert not domain.code_matches("other", "13800000000", "member", code, stored)
    assert not domain.code_matches("secret", "13800000001", "member", code, stored)
    assert not domain.code_matches("secret", "13800000000", "supplier", code, stored)


def test_a_code_works_once_before_it_expires_and_while_attempts_remain():
    expires = domain.code_expires_at(NOW, RULES)
    assert expires == NOW + timedelta(minutes=5)
    assert domain.code_usable(NOW, expires, None, 0, RULES)
    assert not domain.code_usable(expires, expires, None, 0, RULES)
    assert not domain.code_usable(NOW, expires, NOW, 0, RULES)
    assert not domain.code_usable(NOW, expires, None, RULES.max_attempts, RULES)


def test_phones_are_normalised_like_the_shop_does():
    assert domain.normalize_phone("+86 138-0000-0000") == "13800000000"
    with pytest.raises(ValidationFailed):
        domain.normalize_phone("12345")


def test_one_code_per_phone_per_cooldown_and_a_few_per_window():
    assert domain.phone_retry_after(NOW, [], RULES) is None
    assert domain.phone_retry_after(NOW, [NOW - timedelta(seconds=20)], RULES) == 40
    five = [NOW - timedelta(minutes=m) for m in (50, 40, 30, 20, 10)]
    assert domain.phone_retry_after(NOW, five, RULES) == 600  # the oldest leaves the window
    old = [NOW - timedelta(hours=2)] * 10
    assert domain.phone_retry_after(NOW, old, RULES) is None


def test_an_address_may_ask_for_a_bounded_number_of_codes():
    many = [NOW - timedelta(seconds=s) for s in range(RULES.address_max_per_window)]
    wait = domain.address_retry_after(NOW, many, RULES)
    assert wait is not None and 0 < wait <= RULES.window_seconds
    assert domain.address_retry_after(NOW, many[:-1], RULES) is None


def test_a_rotated_refresh_token_presented_again_is_a_reuse():
    later = NOW + timedelta(days=1)
    assert domain.refresh_verdict(NOW, later, None, None) == "ok"
    assert domain.refresh_verdict(NOW, later, NOW, None) == "reused"
    assert domain.refresh_verdict(NOW, later, None, NOW) == "revoked"
    assert domain.refresh_verdict(later, later, None, None) == "expired"
    token = domain.new_refresh_token()
    assert len(token) >= 40 and domain.hash_token(token) != token
