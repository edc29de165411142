"""HTTP routes of the keepers' and suppliers' own money (API.md "Added in v1.1"): payee
accounts, withdrawals, the payout mode, payout history and yearly tax statements.

A shop's money answers only its keeper (and the admin, for reads); any other caller gets 404,
exactly as for a shop that does not exist, so shop ids cannot be probed."""

from __future__ import annotations

from gateway.api import route
from shared.contracts.payouts import PayeeIn, PayoutSettingsIn, WithdrawalIn
from shared.errors import NotFound

WITHDRAWAL_TIMEOUT = 30  # the provider transfer happens inside the request


class MoneyRoutes:
    def _keepers_shop(self, req, shop_id: int, admin: bool = True) -> None:
        """The shop's keeper passes (and the admin where ``admin``); anyone else: 404."""
        if admin and req.principal.is_admin:
            return
        if req.principal.role == "member":
            shop = self.rpc("shop").get_shop(shop_id)
            if int(shop["member_id"]) == int(req.principal.sub):
                return
        raise NotFound(f"shop {shop_id} not found", code="shop_not_found")

    # --- payee accounts ----------------------------------------------------------------------
    @route(
        "PUT",
        "/api/v1/me/payee",
        body=PayeeIn,
        auth=("member", "supplier"),
        summary="Register or change where I am paid (Alipay or bank card, in my own name)",
        tags=["money"],
    )
    def set_payee(self, req):
        p = req.principal
        return self.rpc("payouts").set_payee(p.role, p.sub, req.body.model_dump())

    @route(
        "GET",
        "/api/v1/me/payee",
        auth=("member", "supplier"),
        summary="My payee account (masked) and every change of it",
        tags=["money"],
    )
    def get_payee(self, req):
        return self.rpc("payouts").payee(req.principal.role, req.principal.sub)

    # --- withdrawals -------------------------------------------------------------------------
    @route(
        "POST",
        "/api/v1/shops/<int:shop_id>/withdrawals",
        body=WithdrawalIn,
        auth=("member",),
        status=201,
        summary="Withdraw settleable commission now (paid exactly once through the provider)",
        tags=["money"],
    )
    def request_withdrawal(self, req):
        shop_id = req.params["shop_id"]
        self._keepers_shop(req, shop_id, admin=False)
        return self.rpc("payouts", timeout=WITHDRAWAL_TIMEOUT).request_withdrawal(
            shop_id, req.principal.sub, req.body.model_dump()
        )

    @route(
        "POST",
        "/api/v1/shops/<int:shop_id>/withdrawals/<int:withdrawal_id>/retry",
        auth=("member", "admin"),
        summary="Send a failed (or unfinished) withdrawal again; it is never paid twice",
        tags=["money"],
    )
    def retry_withdrawal(self, req):
        shop_id = req.params["shop_id"]
        self._keepers_shop(req, shop_id)
        return self.rpc("payouts", timeout=WITHDRAWAL_TIMEOUT).retry_withdrawal(
            shop_id, req.params["withdrawal_id"]
        )

    @route(
        "GET",
        "/api/v1/shops/<int:shop_id>/withdrawals",
        auth=("member", "admin"),
        summary="A shop's withdrawals, newest first",
        tags=["money"],
    )
    def list_withdrawals(self, req):
        shop_id = req.params["shop_id"]
        self._keepers_shop(req, shop_id)
        return self.rpc("payouts").withdrawals(shop_id)

    @route(
        "GET",
        "/api/v1/shops/<int:shop_id>/payouts",
        auth=("member", "admin"),
        summary="A keeper's payout history: payout runs and withdrawals",
        tags=["money"],
    )
    def payout_history(self, req):
        shop_id = req.params["shop_id"]
        self._keepers_shop(req, shop_id)
        return self.rpc("payouts").payout_history(shop_id)

    # --- payout mode -------------------------------------------------------------------------
    @route(
        "PUT",
        "/api/v1/shops/<int:shop_id>/payout-settings",
        body=PayoutSettingsIn,
        auth=("member",),
        summary="auto: paid by payout runs; manual: runs skip the shop, the keeper withdraws",
        tags=["money"],
    )
    def set_payout_settings(self, req):
        shop_id = req.params["shop_id"]
        self._keepers_shop(req, shop_id, admin=False)
        return self.rpc("payouts").set_payout_settings(shop_id, req.body.model_dump())

    @route(
        "GET",
        "/api/v1/shops/<int:shop_id>/payout-settings",
        auth=("member", "admin"),
        summary="A keeper's payout mode",
        tags=["money"],
    )
    def get_payout_settings(self, req):
        shop_id = req.params["shop_id"]
        self._keepers_shop(req, shop_id)
        return self.rpc("payouts").payout_settings(shop_id)

    # --- tax ---------------------------------------------------------------------------------
    @route(
        "GET",
        "/api/v1/shops/<int:shop_id>/tax-statements/<int:year>",
        auth=("member", "admin"),
        summary="A keeper's payouts of a year with gross, income tax withheld and net",
        tags=["money"],
    )
    def tax_statement(self, req):
        shop_id = req.params["shop_id"]
        self._keepers_shop(req, shop_id)
        return self.rpc("payouts").tax_statement(shop_id, req.params["year"])
