"""HTTP routes of the orders service (API.md): cart, checkout, payment, shipping, refunds
(contacts and inquiries: ``routes/messages.py``). Who may do what is checked by the orders
service against the order (buyer / keeper of its shop / its supplier); the gateway passes the
token's role and id."""

from __future__ import annotations

from gateway.api import route
from shared.config import sandbox_pay_enabled
from shared.contracts.orders import CartIn, CheckoutIn, ListQuery, RefundIn, RefundQuery, ShipIn

SIGNATURE_HEADER = "X-Xiaopu-Signature"


def _viewer(req) -> dict:
    return {"role": req.principal.role, "id": req.principal.sub}


def _query(req) -> dict:
    return {k: v for k, v in req.request.args.items()}


class OrdersRoutes:
    # --- cart ---------------------------------------------------------------------------------
    @route(
        "GET",
        "/api/v1/cart",
        auth=("member",),
        summary="The member's cart (购物车)",
        tags=["orders"],
    )
    def get_cart(self, req):
        return self.rpc("orders").get_cart(int(req.principal.sub))

    @route(
        "PUT",
        "/api/v1/cart",
        body=CartIn,
        auth=("member",),
        summary="Replace the member's cart",
        tags=["orders"],
    )
    def put_cart(self, req):
        return self.rpc("orders").put_cart(int(req.principal.sub), req.body.model_dump())

    # --- checkout and payment -----------------------------------------------------------------
    @route(
        "POST",
        "/api/v1/orders",
        body=CheckoutIn,
        status=201,
        auth=("member",),
        summary="Check out: one order per supplier, priced by the catalog, stock reserved",
        tags=["orders"],
    )
    def checkout(self, req):
        body = req.body.model_dump()
        if not body.get("visitor_id"):  # the landing page's visitor: last-visit attribution
            body["visitor_id"] = self.client.known_visitor(req.request)  # signed, or None
        return self.rpc("orders", self._orders_timeout(), over_http=True).checkout(
            int(req.principal.sub), body, req.idempotency_key
        )

    def _orders_timeout(self) -> float:
        # checkout and payment make a few RPCs of their own: give them room before a 503
        return 2 * float(self.config.get("XIAOPU_RPC_TIMEOUT", 5))

    @route(
        "POST",
        "/api/v1/orders/<int:order_id>/pay",
        auth=("member", "admin"),
        summary="Sandbox payment: the provider's signed callback, applied the same way",
        tags=["orders"],
        when=sandbox_pay_enabled,  # test mode or an explicit sandbox provider; never production
    )
    def pay_order(self, req):
        return self.rpc("orders", self._orders_timeout(), over_http=True).pay(
            req.params["order_id"], _viewer(req)
        )

    @route(
        "POST",
        "/api/v1/payments/callback",
        idempotent=False,
        summary="Payment provider callback (raw JSON body signed with HMAC-SHA256 in "
        "X-Xiaopu-Signature)",
        tags=["payments"],
    )
    def payment_callback(self, req):
        raw = req.request.get_data(cache=True).decode("utf-8", errors="replace")
        return self.rpc("orders", self._orders_timeout(), over_http=True).payment_callback(
            raw, req.headers.get(SIGNATURE_HEADER)
        )

    @route(
        "GET",
        "/api/v1/admin/payment-conflicts",
        query=ListQuery,
        auth=("admin",),
        summary="Payment ids presented for an order they do not belong to (refused with 409)",
        tags=["admin"],
    )
    def payment_conflicts(self, req):
        return self.rpc("orders").list_payment_conflicts(_query(req))

    # --- the order's life ---------------------------------------------------------------------
    @route(
        "POST",
        "/api/v1/orders/<int:order_id>/cancel",
        auth=("member", "admin"),
        summary="Cancel an unpaid order (buyer)",
        tags=["orders"],
    )
    def cancel_order(self, req):
        return self.rpc("orders").cancel_order(req.params["order_id"], _viewer(req))

    @route(
        "POST",
        "/api/v1/orders/<int:order_id>/ship",
        body=ShipIn,
        auth=("supplier", "admin"),
        summary="Ship a paid order (its supplier)",
        tags=["orders"],
    )
    def ship_order(self, req):
        return self.rpc("orders").ship_order(
            req.params["order_id"], _viewer(req), req.body.model_dump()
        )

    @route(
        "POST",
        "/api/v1/orders/<int:order_id>/confirm",
        auth=("member", "admin"),
        summary="Confirm receipt (buyer)",
        tags=["orders"],
    )
    def confirm_order(self, req):
        return self.rpc("orders").confirm_order(req.params["order_id"], _viewer(req))

    @route(
        "POST",
        "/api/v1/orders/<int:order_id>/refunds",
        body=RefundIn,
        status=201,
        auth=("member", "admin"),
        summary="Ask for a (partial) refund (buyer)",
        tags=["refunds"],
    )
    def request_refund(self, req):
        return self.rpc("orders").request_refund(
            req.params["order_id"], _viewer(req), req.body.model_dump()
        )

    @route(
        "POST",
        "/api/v1/refunds/<int:refund_id>/approve",
        auth=("supplier", "admin"),
        summary="Approve a refund (the order's supplier)",
        tags=["refunds"],
    )
    def approve_refund(self, req):
        return self.rpc("orders").approve_refund(req.params["refund_id"], _viewer(req))

    @route(
        "POST",
        "/api/v1/refunds/<int:refund_id>/reject",
        auth=("supplier", "admin"),
        summary="Reject a refund (the order's supplier)",
        tags=["refunds"],
    )
    def reject_refund(self, req):
        return self.rpc("orders").reject_refund(req.params["refund_id"], _viewer(req))

    @route(
        "GET",
        "/api/v1/refunds",
        query=RefundQuery,
        auth=("supplier", "admin"),
        summary="The refund queue: a supplier's refunds (the admin: all), waiting ones most "
        "urgent first with their decide_by deadline; escalated=true: the platform's queue",
        tags=["refunds"],
    )
    def list_refunds(self, req):
        return self.rpc("orders").list_refunds(_viewer(req), req.query.model_dump())

    @route(
        "GET",
        "/api/v1/refunds/<int:refund_id>",
        auth=("member", "supplier", "admin"),
        summary="A refund (buyer, keeper or supplier of its order)",
        tags=["refunds"],
    )
    def get_refund(self, req):
        return self.rpc("orders").get_refund(req.params["refund_id"], _viewer(req))

    # --- reading ------------------------------------------------------------------------------
    @route(
        "GET",
        "/api/v1/orders",
        query=ListQuery,
        auth=("member", "supplier", "admin"),
        summary="Orders: a member's purchases (?as=keeper: their shop's orders, masked), "
        "a supplier's orders",
        tags=["orders"],
    )
    def list_orders(self, req):
        return self.rpc("orders").list_orders(_viewer(req), _query(req))

    @route(
        "GET",
        "/api/v1/orders/<int:order_id>",
        auth=("member", "supplier", "admin"),
        summary="An order with items, status and history (buyer, keeper — masked — or supplier)",
        tags=["orders"],
    )
    def get_order(self, req):
        return self.rpc("orders").get_order(req.params["order_id"], _viewer(req))

    @route(
        "POST",
        "/api/v1/admin/orders/run-timers",
        auth=("admin",),
        idempotent=False,
        summary="Run the orders timers now (expiry, auto-confirm, completion)",
        tags=["admin"],
    )
    def run_order_timers(self, req):
        return self.rpc("orders").run_timers()
