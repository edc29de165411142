"""RPC to the domain services with a deadline: a service that is down answers 503, not a hang."""

from __future__ import annotations

import eventlet
from nameko.exceptions import RemoteError, UnknownService
from nameko.rpc import RpcProxy

from shared.errors import ServiceUnavailable, XiaopuError


class InternalError(XiaopuError):
    status = 500
    code = "internal_error"


class ExpiringRpcProxy(RpcProxy):
    """An RPC proxy whose requests expire in the target's queue after the gateway's deadline:
    when a service is down the caller gets 503, and the request does not run minutes later
    when the service comes back (a 'pay' the client already saw fail must not happen)."""

    def setup(self):
        super().setup()
        self.options.setdefault(
            "expiration", float(self.container.config.get("XIAOPU_RPC_TIMEOUT", 5))
        )


class TimedProxy:
    def __init__(self, proxy, service: str, timeout: float):
        self._proxy = proxy
        self._service = service
        self._timeout = timeout

    def __getattr__(self, method: str):
        target = getattr(self._proxy, method)

        def call(*args, **kwargs):
            try:
                with eventlet.Timeout(self._timeout):
                    return target(*args, **kwargs)
            except eventlet.Timeout:
                raise ServiceUnavailable(
                    f"the {self._service} service did not answer within {self._timeout:g}s",
                    details={"service": self._service},
                )
            except UnknownService:
                raise ServiceUnavailable(
                    f"the {self._service} service is not running",
                    details={"service": self._service},
                )
            except RemoteError as exc:  # an unexpected failure inside the service
                raise InternalError(
                    f"the {self._service} service failed ({exc.exc_type})",
                    details={"service": self._service},
                )

        return call
