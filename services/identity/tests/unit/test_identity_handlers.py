"""Identity's handlers through a FakeUnitOfWork (no server, no broker)."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from identity.domain import IdentityRules
from identity.handlers import codes, sessions
from identity.models import Base, OtpCode, RefreshToken
from shared.contracts.identity import RequestCode
from shared.errors import TooManyRequests
from shared.testing import FakeUnitOfWork

RULES = IdentityRules()
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
PHONE = "13800000000"


@pytest.fixture
def uow():
    return FakeUnitOfWork(Base.metadata)


def send(uow, now=NOW, phone=PHONE, client="10.0.0.1") -> str:
    sent = codes.request_code(uow, RULES, "k", RequestCode(phone=phone, client=client), now)
    return re.search(r"\d{6}", sent.message.text).group(0)


def test_requesting_a_code_stores_its_hash_and_hands_back_the_sms(uow):
    sent = codes.request_code(uow, RULES, "k", RequestCode(phone="138 0000 0000"), NOW)
    code = re.search(r"\d{6}", sent.message.text).group(0)
    assert sent.message.to == PHONE and sent.expires_in == 300 and code.isdigit()
    row = uow.session.query(OtpCode).one()
    assert row.code_hash != code and code not in row.code_hash
    assert uow.events == []


def test_a_second_code_within_the_cooldown_is_429_with_the_wait(uow):
    send(uow)
    with pytest.raises(TooManyRequests) as caught:
        send(uow, NOW + timedelta(seconds=10))
    assert caught.value.details == {"retry_after": 50, "limit": "phone"}


def test_the_right_code_checks_once_a_wrong_one_counts_an_attempt(uow):
    code = send(uow)
    assert (
        codes.check_code(
            uow, RULES, "k", PHONE, "member", "000000" if code != "000000" else "111111", NOW
        )
        is None
    )
    assert uow.session.query(OtpCode).one().attempts == 1
    code_id = codes.check_code(uow, RULES, "k", PHONE, "member", code, NOW)
    assert code_id is not None
    started = sessions.start(uow, RULES, code_id, PHONE, "member", 7, NOW)
    assert started is not None and started.subject_id == 7
    assert sessions.start(uow, RULES, code_id, PHONE, "member", 7, NOW) is None  # single use
    assert codes.check_code(uow, RULES, "k", PHONE, "member", code, NOW) is None


def test_an_expired_code_is_refused(uow):
    code = send(uow)
    later = NOW + timedelta(seconds=RULES.code_ttl_seconds)
    assert codes.check_code(uow, RULES, "k", PHONE, "member", code, later) is None


def test_after_max_attempts_even_the_right_code_is_refused(uow):
    code = send(uow)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(RULES.max_attempts):
        assert codes.check_code(uow, RULES, "k", PHONE, "member", wrong, NOW) is None
    assert codes.check_code(uow, RULES, "k", PHONE, "member", code, NOW) is None


def test_refresh_rotates_and_a_replayed_token_revokes_the_family(uow):
    code_id = codes.check_code(uow, RULES, "k", PHONE, "member", send(uow), NOW)
    first = sessions.start(uow, RULES, code_id, PHONE, "member", 7, NOW)
    second = sessions.rotate(uow, RULES, first.refresh_token, NOW)
    assert second is not None and second.refresh_token != first.refresh_token
    assert sessions.rotate(uow, RULES, first.refresh_token, NOW) is None  # replay
    assert sessions.rotate(uow, RULES, second.refresh_token, NOW) is None  # family revoked
    assert all(t.revoked_at is not None for t in uow.session.query(RefreshToken))


def test_logout_revokes_only_the_callers_session(uow):
    code_id = codes.check_code(uow, RULES, "k", PHONE, "member", send(uow), NOW)
    mine = sessions.start(uow, RULES, code_id, PHONE, "member", 7, NOW)
    other_phone = "13900000000"
    other_id = codes.check_code(
        uow, RULES, "k", other_phone, "member", send(uow, phone=other_phone), NOW
    )
    theirs = sessions.start(uow, RULES, other_id, other_phone, "member", 8, NOW)
    assert sessions.logout(uow, "member", 7, theirs.refresh_token, NOW) == 1  # not theirs: mine
    assert sessions.rotate(uow, RULES, mine.refresh_token, NOW) is None
    assert sessions.rotate(uow, RULES, theirs.refresh_token, NOW) is not None
