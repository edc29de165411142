"""Entrypoints of the orders service: each one validates, opens a unit of work, applies a rule.

The rules themselves live in ``orders.domain`` (state machine, attribution, refund limits,
inquiry routing); the payment provider behind ``orders.payments``; database work and the calls
to other services in ``orders.handlers``.
"""

from __future__ import annotations

import logging

from nameko.rpc import RpcProxy, rpc

from orders import handlers
from orders.models import Base
from shared.db import Database
from shared.platform import PlatformRpc
from shared.timers import configured_timer

log = logging.getLogger(__name__)


class OrdersService(PlatformRpc, handlers.OrdersHandlers):
    name = "orders"
    db = Database(Base.metadata)
    catalog_rpc = RpcProxy("catalog")
    shop_rpc = RpcProxy("shop")
    share_rpc = RpcProxy("share")

    # --- carts and checkout -------------------------------------------------------------------
    @rpc
    def get_cart(self, buyer_id):
        return self.h_get_cart(int(buyer_id))

    @rpc
    def put_cart(self, buyer_id, data):
        return self.h_put_cart(int(buyer_id), data)

    @rpc
    def checkout(self, buyer_id, data, checkout_key=None):
        """Validate against the catalog (one batch RPC), write the orders (one transaction),
        reserve stock per order; a failed reservation cancels them all and releases stock."""
        return self.h_checkout(int(buyer_id), data, checkout_key)

    # --- payment ------------------------------------------------------------------------------
    @rpc
    def payment_callback(self, raw_body, signature=None):
        """The provider's signed callback (raw body as sent, hex HMAC-SHA256 signature)."""
        return self.h_payment_callback(raw_body, signature)

    @rpc
    def pay(self, order_id, viewer):
        """Sandbox shortcut: builds the provider's signed callback and applies it the same way."""
        return self.h_pay(int(order_id), viewer)

    # --- the order's life ---------------------------------------------------------------------
    @rpc
    def cancel_order(self, order_id, viewer):
        return self.h_cancel(int(order_id), viewer)

    @rpc
    def ship_order(self, order_id, viewer, data):
        return self.h_ship(int(order_id), viewer, data)

    @rpc
    def confirm_order(self, order_id, viewer):
        return self.h_confirm(int(order_id), viewer)

    @rpc
    def request_refund(self, order_id, viewer, data):
        return self.h_request_refund(int(order_id), viewer, data)

    @rpc
    def approve_refund(self, refund_id, viewer):
        return self.h_decide_refund(int(refund_id), viewer, approve=True)

    @rpc
    def reject_refund(self, refund_id, viewer):
        return self.h_decide_refund(int(refund_id), viewer, approve=False)

    @rpc
    def get_refund(self, refund_id, viewer=None):
        return self.h_get_refund(int(refund_id), viewer)

    # --- reading ------------------------------------------------------------------------------
    @rpc
    def get_order(self, order_id, viewer=None):
        """The order with items, status and history; masked for the keeper. Without a viewer
        (service-to-service) the full order."""
        return self.h_get_order(int(order_id), viewer)

    @rpc
    def list_orders(self, viewer, query=None):
        return self.h_list_orders(viewer, query or {})

    @rpc
    def get_contacts(self, order_id, viewer):
        """Who handles what for this order: keeper (pre-sales), supplier (after-sales)."""
        return self.h_contacts(int(order_id), viewer)

    @rpc
    def create_inquiry(self, order_id, viewer, data):
        return self.h_create_inquiry(int(order_id), viewer, data)

    @rpc
    def list_inquiries(self, viewer, query=None):
        return self.h_list_inquiries(viewer, query or {})

    # --- time ---------------------------------------------------------------------------------
    @rpc
    def run_timers(self):
        """Expire unpaid orders, auto-confirm, complete, and retry owed stock calls — now."""
        return self.h_run_timers()

    @configured_timer("ORDERS_TIMER_SECONDS", 3.0)
    def tick(self):
        try:
            self.h_run_timers()
        except Exception:  # the next tick retries; never kill the timer
            log.exception("orders timers failed")
