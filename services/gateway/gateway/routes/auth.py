"""HTTP routes of sign-in (API.md v1.1 "Sign-in"): one-time code by SMS, login, refresh, logout,
and the test-mode list of what the sandbox adapters sent.

The identity service owns codes and refresh tokens; the gateway mints the short-lived access
token (``XIAOPU_ACCESS_TOKEN_TTL_SECONDS``, 15 min by default) with the same ``TokenService``
that checks every request. A rate limit answers 429 with ``Retry-After``.

The client address for the per-address limit is the first ``X-Forwarded-For`` address (the
reverse proxy in front of the gateway must set it, as for the landing page) or the socket peer.
"""

from __future__ import annotations

from werkzeug.wrappers import Response

from gateway.api import error_response, route
from shared.contracts.identity import LoginIn, LogoutIn, MessagesQuery, OtpIn, RefreshIn
from shared.errors import TooManyRequests


def too_many(exc: TooManyRequests) -> Response:
    resp = error_response(exc)
    retry_after = (exc.details or {}).get("retry_after") if isinstance(exc.details, dict) else None
    if retry_after:
        resp.headers["Retry-After"] = str(int(retry_after))
    return resp


class AuthRoutes:
    def access_token(self, role: str, subject_id) -> str:
        ttl = int(self.config.get("XIAOPU_ACCESS_TOKEN_TTL_SECONDS", 900))
        return self.tokens.issue(role, subject_id, ttl=ttl)

    def session_answer(self, session: dict) -> dict:
        return {
            "token": self.access_token(session["role"], session["id"]),
            "refresh_token": session["refresh_token"],
            "role": session["role"],
            "id": session["id"],
            "registered": bool(session.get("registered")),
            "expires_in": int(self.config.get("XIAOPU_ACCESS_TOKEN_TTL_SECONDS", 900)),
        }

    @route(
        "POST",
        "/api/v1/auth/otp",
        body=OtpIn,
        status=202,
        idempotent=False,
        summary="Send a one-time sign-in code to a phone (never says whether it has an account)",
        tags=["auth"],
        limit="signup",
    )
    def auth_otp(self, req):
        data = {**req.body.model_dump(), "client": self.client.address(req.request)}
        try:
            return self.rpc("identity").request_code(data)
        except TooManyRequests as exc:
            return too_many(exc)

    @route(
        "POST",
        "/api/v1/auth/login",
        body=LoginIn,
        idempotent=False,
        summary="Sign in with the phone's one-time code (a new member registers with a "
        "nickname): access token + refresh token",
        tags=["auth"],
        limit="signup",
    )
    def auth_login(self, req):
        data = {**req.body.model_dump(), "client": self.client.address(req.request)}
        return self.session_answer(self.rpc("identity").login(data))

    @route(
        "POST",
        "/api/v1/auth/refresh",
        body=RefreshIn,
        idempotent=False,
        summary="Rotate a refresh token: a new access token and a new refresh token",
        tags=["auth"],
        limit="signup",
    )
    def auth_refresh(self, req):
        return self.session_answer(self.rpc("identity").refresh(req.body.model_dump()))

    @route(
        "POST",
        "/api/v1/auth/logout",
        body=LogoutIn,
        status=204,
        auth=("member", "supplier"),
        idempotent=False,
        summary="Sign out: the refresh token's session is revoked (no token: every session)",
        tags=["auth"],
    )
    def auth_logout(self, req):
        self.rpc("identity").logout(
            req.principal.role, req.principal.sub, req.body.model_dump(exclude_none=True)
        )
        return Response(status=204)

    @route(
        "GET",
        "/api/v1/admin/sandbox/messages",
        query=MessagesQuery,
        auth=("admin",),
        summary="Every message the sandbox adapters sent (sign-in codes, notifications), newest "
        "first (test mode only)",
        tags=["admin"],
    )
    def sandbox_messages(self, req):
        return self.sandbox_records(req.query)  # identity's and messages' (routes/messages.py)
