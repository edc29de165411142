"""Bearer tokens: signed (HS256 JWT via PyJWT, a maintained implementation of a standard
format), carrying the role and subject id, expiring. The admin token comes from configuration."""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from dataclasses import dataclass

import jwt
from nameko.extensions import DependencyProvider

from shared.errors import Forbidden, Unauthorized
from shared.lru import LRU

log = logging.getLogger(__name__)
ROLES = ("member", "supplier", "admin")
# tokens already verified, with their expiry: a client sends the same token on every request
VERIFIED_CACHE_SIZE = 10000


@dataclass(frozen=True)
class Principal:
    role: str
    sub: str

    def require(self, *roles: str) -> "Principal":
        if self.role not in roles:
            raise Forbidden(f"this needs a {' or '.join(roles)} token, not a {self.role} token")
        return self

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class TokenService:
    def __init__(self, secret: str, admin_token: str, ttl: int):
        self.secret = secret
        self.admin_token = admin_token
        self.ttl = ttl
        self._verified: LRU[str, tuple[Principal, int]] = LRU(VERIFIED_CACHE_SIZE)

    def issue(self, role: str, sub: str | int, ttl: int | None = None) -> str:
        """A signed token for ``role``/``sub``; ``ttl`` seconds (default: the configured one;
        sign-in passes the short access-token lifetime)."""
        if role not in ("member", "supplier"):
            raise ValueError(role)
        now = int(time.time())
        return jwt.encode(
            {"role": role, "sub": str(sub), "iat": now, "exp": now + (ttl or self.ttl)},
            self.secret,
            algorithm="HS256",
        )

    def verify(self, header: str | None) -> Principal | None:
        """None when there is no Authorization header; Unauthorized when it is bad."""
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be 'Bearer <token>'")
        token = token.strip()
        if self.admin_token and hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return Principal("admin", "admin")
        # A token whose signature and claims were checked once stays valid until its ``exp``
        # (PyJWT: expired once ``exp <= now``; a passed ``nbf``/``iat`` stays passed): the
        # HS256 check and the claims' JSON are not redone on every request (~4% of the gateway's
        # CPU on checkout and pay). Past its ``exp`` the token is decoded again, and refused.
        known = self._verified.get(token)
        if known is not None and int(time.time()) < known[1]:
            return known[0]
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                options={"require": ["exp", "sub", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired", code="token_expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("the token is invalid", code="invalid_token") from None
        if claims.get("role") not in ("member", "supplier"):
            raise Unauthorized("the token is invalid", code="invalid_token")
        principal = Principal(claims["role"], str(claims["sub"]))
        if isinstance(claims["exp"], int):  # PyJWT also accepts a float or a numeric string
            self._verified.put(token, (principal, claims["exp"]))
        return principal


class Tokens(DependencyProvider):
    def setup(self):
        cfg = self.container.config
        secret = str(cfg.get("XIAOPU_SECRET_KEY") or "")
        if not secret:
            secret = secrets.token_urlsafe(32)
            log.warning("XIAOPU_SECRET_KEY is not set: tokens will not survive a restart")
        admin = str(cfg.get("XIAOPU_ADMIN_TOKEN") or "")
        if not admin:
            log.warning("XIAOPU_ADMIN_TOKEN is not set: admin endpoints are closed")
        self.tokens = TokenService(secret, admin, int(cfg.get("XIAOPU_TOKEN_TTL_SECONDS", 86400)))

    def get_dependency(self, worker_ctx):
        return self.tokens
