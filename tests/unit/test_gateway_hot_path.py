"""The gateway's per-request shortcuts (issue 19) keep the behaviour they shortcut."""

import time
from datetime import datetime, timedelta

import jwt
import pytest

from gateway import auth
from gateway.api import ACCEPTS_ANY_PARAMS
from gateway.auth import Principal, TokenService
from gateway.service import GatewayService
from shared.errors import Unauthorized


def test_a_verified_token_is_remembered_until_its_expiry_only(monkeypatch):
    tokens = TokenService("s" * 32, "admin-secret", ttl=60)
    token = tokens.issue("member", 42)
    decoded = []
    real_decode = jwt.decode
    monkeypatch.setattr(
        auth.jwt, "decode", lambda *a, **k: decoded.append(1) or real_decode(*a, **k)
    )

    assert tokens.verify(f"Bearer {token}") == Principal("member", "42")
    assert tokens.verify(f"Bearer  {token} ") == Principal("member", "42")
    assert len(decoded) == 1  # the second request's token came from the cache

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(seconds=61)

    later = time.time() + 61
    monkeypatch.setattr(jwt.api_jwt, "datetime", Later)
    monkeypatch.setattr(auth.time, "time", lambda: later)
    with pytest.raises(Unauthorized) as expired:
        tokens.verify(f"Bearer {token}")
    assert expired.value.code == "token_expired"
    assert len(decoded) == 2  # past its exp the cached token was decoded again, and refused


def test_a_tampered_token_is_not_taken_from_the_cache():
    tokens = TokenService("s" * 32, "", ttl=60)
    token = tokens.issue("member", 42)
    assert tokens.verify(f"Bearer {token}") == Principal("member", "42")
    with pytest.raises(Unauthorized) as bad:
        tokens.verify(f"Bearer {token[:-2]}xx")
    assert bad.value.code == "invalid_token"


def test_every_route_entry_takes_any_url_parameters():
    """The handler skips nameko's per-request signature check for route entries only: they
    must all accept ``(self, request, **params)``."""
    import inspect

    entries = [
        fn
        for _, fn in inspect.getmembers(GatewayService, inspect.isfunction)
        if getattr(fn, ACCEPTS_ANY_PARAMS, False)
    ]
    assert len(entries) > 50
    for fn in entries:
        inspect.getcallargs(fn, None, object(), order_id=1, anything="x")
