"""Who is asking: the client's address and its visitor id, neither of which a client can forge.

* The address is the socket peer. ``X-Forwarded-For`` is honoured only when the peer is one of
  the configured trusted proxies (``XIAOPU_TRUSTED_PROXIES``, a comma-separated CIDR list,
  default none): the header is then read from the right, skipping trusted hops, and the first
  address a trusted proxy did not add is the client. Anyone else's header is ignored, so
  rotating it changes nothing (issue 13: it counted 300 of 300 fake visits).
* The visitor id is a cookie the server issues (``xp_vid``): 128 random bits and an HMAC of
  them with the gateway's secret (``XIAOPU_SECRET_KEY``). Apps may send the same signed value
  in ``X-Xiaopu-Visitor``. An unsigned or forged value is ignored and a new signed id issued.
  The services see only the random part (``visitor_id``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
from dataclasses import dataclass

from nameko.extensions import DependencyProvider

log = logging.getLogger(__name__)

VISITOR_COOKIE = "xp_vid"
VISITOR_HEADER = "X-Xiaopu-Visitor"
VISITOR_MAX_AGE = 365 * 86400
_SIGNED = re.compile(r"^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})$")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(value: object) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 127.0.0.1"`` (or a YAML list) → networks; a bad entry stops the start."""
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    networks = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise SystemExit(f"XIAOPU_TRUSTED_PROXIES: {text!r} is not a CIDR") from exc
    return tuple(networks)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class ClientIdentity:
    trusted: tuple[Network, ...]
    secret: bytes

    def is_trusted(self, address: str | None) -> bool:
        ip = _ip(address or "")
        return ip is not None and any(ip in net for net in self.trusted)

    def address(self, request) -> str | None:
        """The client's address: the socket peer, or — behind a trusted proxy — the nearest
        address in ``X-Forwarded-For`` that no trusted proxy added."""
        peer = request.remote_addr or None
        if not self.trusted or not self.is_trusted(peer):
            return peer[:64] if peer else None
        hops = [h.strip() for h in ",".join(request.headers.getlist("X-Forwarded-For")).split(",")]
        client = peer
        for hop in reversed([h for h in hops if h]):
            if _ip(hop) is None:  # garbage from beyond the proxy: trust nothing further left
                break
            client = hop
            if not self.is_trusted(hop):
                break
        return client[:64] if client else None

    # --- the visitor cookie ---------------------------------------------------------------------
    def _signature(self, visitor: str) -> str:
        mac = hmac.new(self.secret, b"xp_vid:" + visitor.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:16]).decode().rstrip("=")

    def sign(self, visitor: str) -> str:
        return f"{visitor}.{self._signature(visitor)}"

    def verified(self, value: str | None) -> str | None:
        """The visitor id of a signed value, or None when it is not one we issued."""
        match = _SIGNED.match(value or "")
        if match is None:
            return None
        visitor, signature = match.groups()
        return visitor if hmac.compare_digest(signature, self._signature(visitor)) else None

    def visitor(self, request) -> tuple[str, bool]:
        """(visitor id, whether it is new and the signed cookie must be set)."""
        for value in (request.cookies.get(VISITOR_COOKIE), request.headers.get(VISITOR_HEADER)):
            visitor = self.verified(value)
            if visitor is not None:
                return visitor, False
        return secrets.token_urlsafe(16), True

    def known_visitor(self, request) -> str | None:
        """The signed visitor id the request carries, or None (never issues one)."""
        for value in (request.cookies.get(VISITOR_COOKIE), request.headers.get(VISITOR_HEADER)):
            visitor = self.verified(value)
            if visitor is not None:
                return visitor
        return None

    def set_cookie(self, resp, visitor: str):
        resp.set_cookie(
            VISITOR_COOKIE,
            self.sign(visitor),
            max_age=VISITOR_MAX_AGE,
            path="/",
            httponly=True,
            samesite="Lax",
        )
        return resp


class Client(DependencyProvider):
    """``self.client.address(request)`` / ``self.client.visitor(request)`` in a route."""

    def setup(self):
        cfg = self.container.config
        secret = str(cfg.get("XIAOPU_SECRET_KEY") or "")
        if not secret:  # Tokens warns about the same missing key
            secret = secrets.token_urlsafe(32)
        self.identity = ClientIdentity(
            parse_proxies(cfg.get("XIAOPU_TRUSTED_PROXIES")), secret.encode()
        )

    def get_dependency(self, worker_ctx):
        return self.identity
