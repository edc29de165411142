"""Entrypoints of the identity service: each one validates, opens a unit of work and calls a
handler (``identity.handlers``) or a query (``identity.queries``).

RPC surface: request_code, login, refresh, logout, sandbox_messages (test mode), plus health
and set_clock from ``PlatformRpc``.
"""

from __future__ import annotations

import logging
import secrets

from nameko.rpc import RpcProxy

from identity import domain, queries
from identity.directory import Directory
from identity.domain import IdentityRules
from identity.handlers import codes, sessions
from identity.models import Base
from identity.sms import sms_sender
from shared import clock
from shared.config import test_mode
from shared.contracts.identity import Login, LogoutIn, MessagesQuery, RefreshIn, RequestCode
from shared.db import Database
from shared.errors import NotFound, Unauthorized, ValidationFailed
from shared.platform import PlatformRpc
from shared.rpc import rpc
from shared.validation import validated

log = logging.getLogger(__name__)
_FALLBACK_SECRET = secrets.token_urlsafe(32)


def _refused() -> Unauthorized:
    # One answer for a wrong, expired, used or exhausted code and for a phone with no account.
    return Unauthorized("the code is wrong, expired or already used", code="invalid_code")


def _refresh_refused() -> Unauthorized:
    return Unauthorized("the refresh token is not valid", code="invalid_refresh_token")


class IdentityService(PlatformRpc):
    name = "identity"
    db = Database(Base.metadata)
    shop_rpc = RpcProxy("shop")
    catalog_rpc = RpcProxy("catalog")

    @property
    def rules(self) -> IdentityRules:
        return IdentityRules.from_config(self.config)

    @property
    def secret(self) -> str:
        configured = str(self.config.get("IDENTITY_CODE_SECRET") or "")
        return configured or _FALLBACK_SECRET

    def directory(self) -> Directory:
        return Directory(
            self.deadline.call(self.shop_rpc, "shop"),
            self.deadline.call(self.catalog_rpc, "catalog"),
        )

    # --- one-time codes -----------------------------------------------------------------------
    @rpc
    def request_code(self, data) -> dict:
        """Store and send a code; 202 for every well-formed phone (429 over a rate limit)."""
        cmd = validated(RequestCode, data)
        with self.db.unit_of_work() as uow:
            sent = codes.request_code(uow, self.rules, self.secret, cmd, clock.now())
        sms_sender(self.config, self.db).send(sent.message)
        return {"expires_in": sent.expires_in}

    # --- sessions -----------------------------------------------------------------------------
    @rpc
    def login(self, data) -> dict:
        """Three steps, each its own transaction: check the code (a failed attempt is counted
        and committed), find the account (an RPC; a new member registers with a nickname),
        then consume the code and open the session."""
        cmd = validated(Login, data)
        phone = domain.normalize_phone(cmd.phone)
        now = clock.now()
        with self.db.unit_of_work() as uow:
            code_id = codes.check_code(uow, self.rules, self.secret, phone, cmd.role, cmd.code, now)
        if code_id is None:
            raise _refused()
        with self.db.read() as session:
            subject = queries.account_of(session, cmd.role, phone)
        directory = self.directory()
        if subject is None:
            subject = directory.owner(cmd.role, phone)
        registered = False
        if subject is None and cmd.role == "member" and cmd.nickname:
            subject = directory.register_member(phone, cmd.nickname)
            registered = subject is not None
        with self.db.unit_of_work() as uow:
            if subject is None:
                codes.count_failed_attempt(uow, code_id)
                started = None
            else:
                started = sessions.start(uow, self.rules, code_id, phone, cmd.role, subject, now)
        if started is None:
            raise _refused()
        return started.as_dict(registered)

    @rpc
    def refresh(self, data) -> dict:
        cmd = validated(RefreshIn, data)
        with self.db.unit_of_work() as uow:
            rotated = sessions.rotate(uow, self.rules, cmd.refresh_token, clock.now())
        if rotated is None:  # refused only after the commit: a detected reuse stays revoked
            raise _refresh_refused()
        return rotated.as_dict()

    @rpc
    def logout(self, role: str, subject_id, data=None) -> dict:
        cmd = validated(LogoutIn, data)
        if role not in domain.ROLES or not str(subject_id).isdigit():
            raise ValidationFailed("only members and suppliers have sessions", code="bad_subject")
        with self.db.unit_of_work() as uow:
            revoked = sessions.logout(uow, role, int(subject_id), cmd.refresh_token, clock.now())
        return {"revoked": revoked}

    # --- the sandbox --------------------------------------------------------------------------
    @rpc
    def sandbox_messages(self, data=None) -> dict:
        if not test_mode(self.config):
            raise NotFound("no such endpoint (test mode is off)", code="route_not_found")
        query = validated(MessagesQuery, data)
        to = query.to
        if to:
            try:
                to = domain.normalize_phone(to)
            except ValidationFailed:
                pass  # not a phone: another channel's address, matched as given
        with self.db.read() as session:
            return queries.sandbox_messages(session, to, query.limit)
