"""HTTP routes of the payouts service (API.md): earnings, statements, settlement and payout runs,
and the admin's review of held commissions (fraud rules, suspension)."""

from __future__ import annotations

import re

from werkzeug.wrappers import Response

from gateway.api import route
from shared.contracts.payouts import (
    MONTH_PATTERN,
    HoldDecisionIn,
    HoldsQuery,
    PayoutRunIn,
    SettlementRunIn,
    SupplierBalanceOut,
)
from shared.errors import NotFound, ValidationFailed
from shared.validation import not_found

_MONTH = re.compile(MONTH_PATTERN)


class PayoutsRoutes:
    def _check_keeper(self, req, shop_id: int) -> None:
        """A keeper sees only their own shop's money; the admin sees every shop's. Another
        keeper's shop answers the shop service's own 404 for a missing shop."""
        if req.principal.is_admin:
            return
        shop = self.rpc("shop").get_shop(shop_id)
        if int(shop["member_id"]) != int(req.principal.sub):
            raise not_found("shop", shop_id)

    @route(
        "GET",
        "/api/v1/shops/<int:shop_id>/earnings",
        auth=("member", "admin"),
        summary="A shop's pending, settleable and paid commission, per order",
        tags=["payouts"],
    )
    def shop_earnings(self, req):
        shop_id = req.params["shop_id"]
        self._check_keeper(req, shop_id)
        return self.rpc("payouts").earnings(shop_id)

    @route(
        "GET",
        "/api/v1/shops/<int:shop_id>/statements/<month>.csv",
        auth=("member", "admin"),
        summary="A shop's monthly statement (CSV)",
        tags=["payouts"],
        produces="text/csv",
    )
    def shop_statement(self, req):
        shop_id, month = req.params["shop_id"], req.params["month"]
        if not _MONTH.match(month):
            raise ValidationFailed(
                "month must look like YYYY-MM",
                details=[{"field": "month", "message": "expected YYYY-MM"}],
            )
        self._check_keeper(req, shop_id)
        body = self.rpc("payouts").statement(shop_id, month)
        return Response(
            body,
            status=200,
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="shop-{shop_id}-{month}.csv"'},
        )

    def _check_supplier(self, req, supplier_id: int) -> None:
        """A supplier sees only its own money (another's answers 404, as a missing one)."""
        if req.principal.is_admin:
            return
        if req.principal.role != "supplier" or int(req.principal.sub) != int(supplier_id):
            raise NotFound(f"supplier {supplier_id} not found", code="supplier_not_found")

    @route(
        "GET",
        "/api/v1/suppliers/<int:supplier_id>/balance",
        auth=("supplier", "admin"),
        response=SupplierBalanceOut,
        summary="A supplier's pending, settleable, paid and held money, per order",
        tags=["payouts"],
    )
    def supplier_balance(self, req):
        supplier_id = req.params["supplier_id"]
        self._check_supplier(req, supplier_id)
        return self.rpc("payouts").supplier_balance(supplier_id)

    @route(
        "GET",
        "/api/v1/suppliers/<int:supplier_id>/statements/<month>.csv",
        auth=("supplier", "admin"),
        summary="A supplier's monthly statement (CSV)",
        tags=["payouts"],
        produces="text/csv",
    )
    def supplier_statement(self, req):
        supplier_id, month = req.params["supplier_id"], req.params["month"]
        if not _MONTH.match(month):
            raise ValidationFailed(
                "month must look like YYYY-MM",
                details=[{"field": "month", "message": "expected YYYY-MM"}],
            )
        self._check_supplier(req, supplier_id)
        body = self.rpc("payouts").supplier_statement(supplier_id, month)
        return Response(
            body,
            status=200,
            mimetype="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="supplier-{supplier_id}-{month}.csv"'
            },
        )

    @route(
        "POST",
        "/api/v1/admin/settlements/run",
        body=SettlementRunIn,
        auth=("admin",),
        summary="Move commissions whose after-sales window closed to settleable",
        tags=["admin"],
    )
    def run_settlement(self, req):
        return self.rpc("payouts", timeout=60).run_settlement(req.body.model_dump())

    @route(
        "POST",
        "/api/v1/admin/payouts/run",
        body=PayoutRunIn,
        auth=("admin",),
        summary="Pay every settleable balance above the minimum, exactly once",
        tags=["admin"],
    )
    def run_payouts(self, req):
        return self.rpc("payouts", timeout=120).run_payouts(req.body.model_dump())

    @route(
        "GET",
        "/api/v1/admin/books",
        auth=("admin",),
        summary="Check that the ledger balances to zero",
        tags=["admin"],
    )
    def check_books(self, req):
        return self.rpc("payouts").check_books()

    # --- holds: fraud review and suspension (issue 13) ------------------------------------
    @route(
        "GET",
        "/api/v1/admin/holds",
        query=HoldsQuery,
        auth=("admin",),
        summary="Held commissions (fraud rules, suspended shops) with their reasons and decisions",
        tags=["admin"],
    )
    def payouts_holds(self, req):
        return self.rpc("payouts").holds(req.query.model_dump())

    @route(
        "POST",
        "/api/v1/admin/holds/<int:hold_id>/clear",
        body=HoldDecisionIn,
        auth=("admin",),
        summary="Clear a hold: the commission settles normally (the reason is recorded)",
        tags=["admin"],
    )
    def payouts_clear_hold(self, req):
        actor = {"role": req.principal.role, "sub": req.principal.sub}
        return self.rpc("payouts").clear_hold(actor, req.params["hold_id"], req.body.model_dump())

    @route(
        "POST",
        "/api/v1/admin/holds/<int:hold_id>/forfeit",
        body=HoldDecisionIn,
        auth=("admin",),
        summary="Forfeit a held commission: the keeper is paid nothing for the order, the "
        "supplier keeps it (a balanced journal entry; the reason is recorded)",
        tags=["admin"],
    )
    def payouts_forfeit_hold(self, req):
        actor = {"role": req.principal.role, "sub": req.principal.sub}
        return self.rpc("payouts").forfeit_hold(actor, req.params["hold_id"], req.body.model_dump())
