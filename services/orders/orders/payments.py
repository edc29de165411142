"""The payment-provider adapter: a narrow interface plus a sandbox that behaves like a real one.

A real provider is paid by the buyer elsewhere and calls us back: ``POST /api/v1/payments/callback``
with the raw JSON body signed by HMAC-SHA256 (hex) in the ``X-Xiaopu-Signature`` header. It may
call back twice, late, or out of order; the orders service verifies the signature, applies each
payment id once and checks the amount (see ``OrdersService.payment_callback``).

``SandboxProvider`` signs with ``PAYMENT_SANDBOX_SECRET``; no secret is built in: with none
configured every callback is refused (401 ``payment_provider_not_configured``).
``build_callback`` makes exactly the body + signature a real callback would carry: the
``/orders/{id}/pay`` shortcut hands it to the same verify-and-apply function the HTTP callback
uses. ``deliver`` POSTs it to a URL, optionally
several times and late (what tests and the sandbox use to behave like the real network).
Swapping in a real provider means another class with the same three methods.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Protocol

from nameko.extensions import DependencyProvider

from shared import clock
from shared.config import payment_provider
from shared.errors import Unauthorized

SIGNATURE_HEADER = "X-Xiaopu-Signature"


class PaymentProvider(Protocol):
    name: str

    def verify(self, raw_body: bytes | str, signature: str | None) -> dict:
        """The callback's JSON when the signature is right; Unauthorized otherwise."""

    def build_callback(
        self, order_id: int, amount_fen: int, payment_id: str | None = None
    ) -> tuple[bytes, str]:
        """(raw body, signature) of a successful payment callback."""

    def refund(self, payment_id: str | None, amount_fen: int, refund_key: str) -> dict:
        """Give money back; idempotent per ``refund_key``; ``{refund_id, status}``."""


def sign(secret: str, raw_body: bytes) -> str:
    return hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()


class SandboxProvider:
    name = "sandbox"

    def __init__(self, secret: str):
        self.secret = str(secret or "")

    def _require_secret(self) -> str:
        if not self.secret.strip():
            raise Unauthorized(
                "no payment provider secret is configured: every callback is refused",
                code="payment_provider_not_configured",
            )
        return self.secret

    def verify(self, raw_body: bytes | str, signature: str | None) -> dict:
        raw = raw_body.encode() if isinstance(raw_body, str) else raw_body
        self._require_secret()
        if not signature:
            raise Unauthorized("the payment callback is not signed", code="missing_signature")
        expected = sign(self.secret, raw)
        if not hmac.compare_digest(expected, signature.strip().lower()):
            raise Unauthorized("the payment callback signature is wrong", code="bad_signature")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise Unauthorized("the payment callback is not JSON", code="bad_signature") from exc
        if not isinstance(data, dict):
            raise Unauthorized("the payment callback is not a JSON object", code="bad_signature")
        return data

    def build_callback(
        self, order_id: int, amount_fen: int, payment_id: str | None = None
    ) -> tuple[bytes, str]:
        body = {
            "payment_id": payment_id or f"sbx-pay-{order_id}",
            "order_id": int(order_id),
            "amount_fen": int(amount_fen),
            "status": "succeeded",
            "paid_at": clock.iso(clock.now()),
            "provider": self.name,
        }
        raw = json.dumps(body, separators=(",", ":")).encode()
        return raw, sign(self._require_secret(), raw)

    def refund(self, payment_id: str | None, amount_fen: int, refund_key: str) -> dict:
        # The sandbox always succeeds; its refund id is derived from our key, so a retried
        # refund is the same refund (idempotent like a real provider's out_refund_no).
        return {
            "refund_id": f"sbx-refund-{refund_key}",
            "status": "succeeded",
            "amount_fen": int(amount_fen),
            "payment_id": payment_id,
        }

    @staticmethod
    def deliver(
        url: str, raw_body: bytes, signature: str, times: int = 1, timeout: float = 10.0
    ) -> list:
        """POST the signed callback ``times`` times (a real provider retries); the responses."""
        import requests

        return [
            requests.post(
                url,
                data=raw_body,
                timeout=timeout,
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
            )
            for _ in range(times)
        ]


PROVIDERS = {"sandbox": SandboxProvider}


def provider_from_config(config: dict) -> PaymentProvider:
    """The configured provider (``PAYMENT_PROVIDER``); only the sandbox has an adapter in this
    build, so another name stops the service at start (``check_provider``)."""
    name = payment_provider(config)
    if name != "sandbox":
        raise SystemExit(
            f"PAYMENT_PROVIDER={name} has no adapter in this build (orders/payments.py knows: "
            f"{', '.join(PROVIDERS)})"
        )
    return SandboxProvider(str(config.get("PAYMENT_SANDBOX_SECRET") or ""))


class Payments(DependencyProvider):
    """The service's payment provider, checked when the container starts (an unknown
    ``PAYMENT_PROVIDER`` stops the service there, not at the first callback)."""

    def setup(self) -> None:
        self.provider = provider_from_config(self.container.config)

    def get_dependency(self, worker_ctx) -> PaymentProvider:
        return self.provider
