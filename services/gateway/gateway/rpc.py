"""RPC to the domain services with a deadline: a service that is down answers 503, not a hang.

Every call goes through ``shared.rpc`` (``TimedCalls``): the gateway is where a request's
deadline is born — now + ``XIAOPU_RPC_TIMEOUT``, or the route's own longer timeout — and it
travels to the service in the nameko context (``xp_deadline``), so any call that service makes
in turn gives up before the gateway does.
"""

from __future__ import annotations

from nameko.rpc import RpcProxy

from shared.rpc import DEFAULT_TIMEOUT_SECONDS


class ExpiringRpcProxy(RpcProxy):
    """An RPC proxy whose requests expire in the target's queue after the gateway's deadline:
    when a service is down the caller gets 503, and the request does not run minutes later
    when the service comes back (a 'pay' the client already saw fail must not happen)."""

    def setup(self):
        super().setup()
        self.options.setdefault(
            "expiration",
            float(self.container.config.get("XIAOPU_RPC_TIMEOUT", DEFAULT_TIMEOUT_SECONDS)),
        )
