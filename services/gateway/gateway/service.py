"""The gateway service: the route mixins plus the dependencies they share."""

from __future__ import annotations

from nameko.events import EventDispatcher

from gateway.auth import Tokens
from gateway.client import Client
from gateway.invalidation import CacheInvalidation
from gateway.ratelimit import RateLimits
from gateway.routes.auth import AuthRoutes
from gateway.routes.catalog import CatalogRoutes
from gateway.routes.messages import MessagesRoutes
from gateway.routes.money import MoneyRoutes
from gateway.routes.orders import OrdersRoutes
from gateway.routes.payouts import PayoutsRoutes
from gateway.routes.platform import PlatformRoutes
from gateway.routes.share import ShareRoutes
from gateway.routes.shop import ShopRoutes
from gateway.rpc import ExpiringRpcProxy as RpcProxy
from gateway.web.pages import WebRoutes
from gateway.web.workbench import WorkbenchRoutes
from shared.clocksync import ClockFollower
from shared.httprpc import HttpRpcProxy
from shared.idempotency import IDEM_KEY
from shared.liveness import Heartbeat, InstanceRegistry
from shared.logs import Correlation
from shared.metrics import Metrics
from shared.platform import SharedConfig
from shared.rpc import Deadline, TimedCalls


class GatewayService(
    PlatformRoutes,
    CatalogRoutes,
    ShopRoutes,
    ShareRoutes,
    OrdersRoutes,
    PayoutsRoutes,
    AuthRoutes,
    MessagesRoutes,
    WebRoutes,
    WorkbenchRoutes,
    MoneyRoutes,
    CacheInvalidation,
    ClockFollower,
):
    name = "gateway"

    config = SharedConfig()
    tokens = Tokens()
    client = Client()
    rate_limits = RateLimits()
    correlation = Correlation()
    deadline = Deadline()
    metrics = Metrics()
    heartbeat = Heartbeat()
    instance_registry = InstanceRegistry()
    dispatch_event = EventDispatcher()  # clock_moved (test mode): shared.clocksync
    catalog_rpc = RpcProxy("catalog")
    shop_rpc = RpcProxy("shop")
    share_rpc = RpcProxy("share")
    orders_rpc = RpcProxy("orders")
    payouts_rpc = RpcProxy("payouts")
    identity_rpc = RpcProxy("identity")
    messages_rpc = RpcProxy("messages")
    orders_http = HttpRpcProxy("orders")  # XIAOPU_HTTP_RPC_ORDERS (shared/httprpc.py)

    health_timeout = 2.0

    def rpc(
        self, service: str, timeout: float | None = None, over_http: bool = False
    ) -> TimedCalls:
        """``self.rpc("shop").open_shop(...)``: an RPC with a deadline (503 when it passes).

        The deadline is now + ``timeout`` (the route's own, for the few slow ones) or
        ``XIAOPU_RPC_TIMEOUT``; ``shared.rpc`` puts it in the worker's context data
        (``xp_deadline``) for the duration of the call, so it travels to the service and
        bounds every call the service makes in turn. ``over_http``: through the service's
        internal HTTP door when one is configured (``shared/httprpc.py``: checkout and pay)."""
        idem = self.deadline.worker_ctx.data.get(IDEM_KEY)  # the request's key (gateway.api)
        door = getattr(self, f"{service}_http", None) if over_http else None
        proxy = door if door is not None else getattr(self, f"{service}_rpc")
        return self.deadline.call(proxy, service, timeout, idem=idem)

    def public_url(self) -> str:
        configured = str(self.config.get("XIAOPU_PUBLIC_URL") or "").rstrip("/")
        if configured:
            return configured
        return "http://" + str(self.config.get("WEB_SERVER_ADDRESS", "127.0.0.1:8000"))
