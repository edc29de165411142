"""HTTP routes of the messages service (API.md v1.1 "Conversations"): question threads after an
order and before buying, replies, forwarding to the supplier, the platform's escalation queue,
the contacts card without personal phones, notification preferences, and the product facts
(FAQ, specs, after-sales policy) a supplier gives the catalog.

Who may read or post is decided by the messages service against the thread's parties; anyone
else gets the same 404 as for a thread that does not exist.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.api import route
from shared.config import test_mode
from shared.contracts.catalog import ProductFactsIn
from shared.contracts.messages import (
    ForwardIn,
    MessageIn,
    OrderThreadIn,
    PreferencesIn,
    PreSaleThreadIn,
    SandboxQuery,
    ThreadQuery,
)
from shared.errors import NotFound, XiaopuError


class NotificationsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    limit: int = Field(50, ge=1, le=200)


def _viewer(req) -> dict:
    return {"role": req.principal.role, "id": req.principal.sub}


def _query(req) -> dict:
    return {k: v for k, v in req.request.args.items()}


def newest_first(*lists: list[dict], limit: int) -> list[dict]:
    """Sandbox records of several services as one list, newest first."""
    merged = [item for items in lists for item in items]
    merged.sort(key=lambda m: str(m.get("created_at") or ""), reverse=True)
    return merged[:limit]


class MessagesRoutes:
    # --- threads ------------------------------------------------------------------------------
    @route(
        "POST",
        "/api/v1/orders/<int:order_id>/inquiries",
        body=OrderThreadIn,
        status=201,
        auth=("member",),
        summary="Ask about a paid order: a thread routed to the keeper or the supplier by topic "
        "and the order's state",
        tags=["conversations"],
    )
    def create_inquiry(self, req):
        return self.rpc("messages").open_order_thread(
            req.params["order_id"], _viewer(req), req.body.model_dump()
        )

    @route(
        "POST",
        "/api/v1/inquiries",
        body=PreSaleThreadIn,
        status=201,
        auth=("member",),
        summary="Ask before buying (from a share code or a shop number): a thread routed to "
        "that shop's keeper",
        tags=["conversations"],
    )
    def create_pre_sale_inquiry(self, req):
        return self.rpc("messages").open_pre_sale_thread(_viewer(req), req.body.model_dump())

    @route(
        "GET",
        "/api/v1/inquiries",
        query=ThreadQuery,
        auth=("member", "supplier", "admin"),
        summary="My threads: a member's questions and their shops' (as=buyer|keeper), a "
        "supplier's routed or forwarded ones; newest activity first",
        tags=["conversations"],
    )
    def list_inquiries(self, req):
        return self.rpc("messages").list_threads(_viewer(req), _query(req))

    @route(
        "GET",
        "/api/v1/inquiries/<int:inquiry_id>",
        auth=("member", "supplier", "admin"),
        summary="A thread with its messages, the product facts (as sold, plus the current FAQ) "
        "and answers suggested from the FAQ",
        tags=["conversations"],
    )
    def get_inquiry(self, req):
        return self.rpc("messages").get_thread(req.params["inquiry_id"], _viewer(req))

    @route(
        "POST",
        "/api/v1/inquiries/<int:inquiry_id>/messages",
        body=MessageIn,
        status=201,
        auth=("member", "supplier", "admin"),
        summary="Write in a thread: the routed party's reply answers it, a buyer's follow-up "
        "reopens it",
        tags=["conversations"],
    )
    def post_inquiry_message(self, req):
        return self.rpc("messages").post_message(
            req.params["inquiry_id"], _viewer(req), req.body.model_dump()
        )

    @route(
        "POST",
        "/api/v1/inquiries/<int:inquiry_id>/forward",
        body=ForwardIn,
        auth=("member", "admin"),
        summary="The keeper hands the thread to the supplier (status forwarded); the keeper "
        "keeps reading it",
        tags=["conversations"],
    )
    def forward_inquiry(self, req):
        return self.rpc("messages").forward_thread(
            req.params["inquiry_id"], _viewer(req), req.body.model_dump()
        )

    @route(
        "POST",
        "/api/v1/inquiries/<int:inquiry_id>/close",
        auth=("member", "supplier", "admin"),
        summary="Close a thread (no more messages)",
        tags=["conversations"],
    )
    def close_inquiry(self, req):
        return self.rpc("messages").close_thread(req.params["inquiry_id"], _viewer(req))

    @route(
        "GET",
        "/api/v1/admin/inquiries",
        query=ThreadQuery,
        auth=("admin",),
        summary="The platform's queue: threads by status (escalated: unanswered past their "
        "deadline)",
        tags=["admin"],
    )
    def admin_inquiries(self, req):
        return self.rpc("messages").list_threads(_viewer(req), _query(req))

    @route(
        "POST",
        "/api/v1/admin/messages/run-timers",
        auth=("admin",),
        idempotent=False,
        summary="Escalate overdue threads and send owed notifications now",
        tags=["admin"],
    )
    def run_message_timers(self, req):
        return self.rpc("messages").run_timers()

    # --- contacts -----------------------------------------------------------------------------
    @route(
        "GET",
        "/api/v1/orders/<int:order_id>/contacts",
        auth=("member", "supplier", "admin"),
        summary="Who handles what: the keeper (through the thread, never a personal phone) for "
        "pre-sales, the supplier's service contact for shipping and after-sales, product facts",
        tags=["conversations"],
    )
    def order_contacts(self, req):
        return self.rpc("messages").order_contacts(req.params["order_id"], _viewer(req))

    # --- product facts ------------------------------------------------------------------------
    @route(
        "PUT",
        "/api/v1/products/<int:product_id>/faq",
        body=ProductFactsIn,
        auth=("supplier", "admin"),
        summary="The product's FAQ, specs and after-sales policy (the supplier that owns it)",
        tags=["catalog"],
    )
    def put_product_faq(self, req):
        owner = None if req.principal.role == "admin" else req.principal.sub
        return self.rpc("catalog").set_product_facts(
            req.params["product_id"], req.body.model_dump(exclude_none=True), owner
        )

    # --- notifications ------------------------------------------------------------------------
    @route(
        "GET",
        "/api/v1/me/notification-preferences",
        auth=("member", "supplier"),
        summary="Where I am told what needs me (channels) and what I muted",
        tags=["notifications"],
    )
    def get_notification_preferences(self, req):
        return self.rpc("messages").get_preferences(_viewer(req))

    @route(
        "PUT",
        "/api/v1/me/notification-preferences",
        body=PreferencesIn,
        auth=("member", "supplier"),
        summary="Choose channels (sms, wechat, email), addresses and muted kinds",
        tags=["notifications"],
    )
    def put_notification_preferences(self, req):
        return self.rpc("messages").set_preferences(_viewer(req), req.body.model_dump())

    @route(
        "GET",
        "/api/v1/me/notifications",
        query=NotificationsQuery,
        auth=("member", "supplier"),
        summary="The notifications sent to me (and those muted or over the hourly limit)",
        tags=["notifications"],
    )
    def my_notifications(self, req):
        return self.rpc("messages").my_notifications(_viewer(req), req.query.limit)

    # --- the sandbox --------------------------------------------------------------------------
    def sandbox_records(self, query: SandboxQuery) -> dict:
        """GET /api/v1/admin/sandbox/messages: identity's sign-in codes and messages'
        notifications, one list newest first (test mode; routes/auth.py serves the path).
        ``to`` matches as given here (identity also normalises a phone)."""
        if not test_mode(self.config):
            raise NotFound("no such endpoint (test mode is off)", code="route_not_found")
        wanted = query.model_dump(exclude_none=True)
        codes = self.rpc("identity").sandbox_messages(wanted)["items"]
        try:
            told = self.rpc("messages").sandbox_messages(wanted)["items"]
        except XiaopuError:
            told = []  # notifications are down; the sign-in codes still show
        return {"items": newest_first(codes, told, limit=query.limit)}
