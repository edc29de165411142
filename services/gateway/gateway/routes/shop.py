"""HTTP routes of the shop service (API.md): members, shops, selections, keeper levels.

Ownership (a keeper never touches another keeper's shop) is checked by the shop service, which
gets the caller as ``actor = {"role", "sub"}``.
"""

from __future__ import annotations

from werkzeug.wrappers import Response

from gateway.api import route
from shared.contracts.shop import (
    MemberIn,
    PublicShopQuery,
    RecalculateLevelsIn,
    SelectionIn,
    ShopIn,
    ShopPatch,
    ShopQuotaIn,
    SuspensionIn,
)


def _actor(req) -> dict:
    return {"role": req.principal.role, "sub": req.principal.sub}


class ShopRoutes:
    @route(
        "POST",
        "/api/v1/members",
        body=MemberIn,
        status=201,
        summary="Register a member (returns a member token)",
        tags=["members"],
        limit="signup",
    )
    def shop_register_member(self, req):
        member = self.rpc("shop").register_member(req.body.model_dump())
        return {
            "id": member["id"],
            "token": self.tokens.issue("member", member["id"]),
            "nickname": member["nickname"],
        }

    @route(
        "GET",
        "/api/v1/me",
        auth=("member",),
        summary="The member's profile and shops",
        tags=["members"],
    )
    def shop_me(self, req):
        return self.rpc("shop").me(req.principal.sub)

    @route(
        "POST",
        "/api/v1/admin/members/<int:member_id>/shop-quota",
        body=ShopQuotaIn,
        auth=("admin",),
        summary="Let a member own more than one shop",
        tags=["admin"],
    )
    def shop_grant_quota(self, req):
        return self.rpc("shop").grant_shop_quota(req.params["member_id"], req.body.model_dump())

    @route(
        "POST",
        "/api/v1/shops",
        body=ShopIn,
        status=201,
        auth=("member",),
        summary="Open a shop (credit score and real-name rules apply)",
        tags=["shops"],
    )
    def shop_open(self, req):
        return self.rpc("shop").open_shop(req.principal.sub, req.body.model_dump())

    @route(
        "GET",
        "/api/v1/shops/by-number/<shop_number>",
        query=PublicShopQuery,
        summary="Public shop view by shop number (店铺号): available products with reasons; "
        "unavailable picks listed apart on the first page",
        tags=["shops"],
        limit="shop_lookup",
    )
    def shop_public_view(self, req):
        return self.rpc("shop").public_shop(
            req.params["shop_number"], req.query.limit, req.query.cursor
        )

    @route(
        "GET",
        "/api/v1/shops/<int:shop_id>",
        auth=("member", "admin"),
        summary="A shop with its selections (keeper or admin)",
        tags=["shops"],
    )
    def shop_detail_view(self, req):
        return self.rpc("shop").shop_detail(_actor(req), req.params["shop_id"])

    @route(
        "GET",
        "/api/v1/shops/<int:shop_id>/level",
        auth=("member", "admin"),
        summary="The keeper's level, its bonus, every threshold and the progress to the next "
        "level from this month's settled sales (keeper or admin)",
        tags=["shops"],
    )
    def shop_level_view(self, req):
        return self.rpc("shop").shop_level(_actor(req), req.params["shop_id"])

    @route(
        "PATCH",
        "/api/v1/shops/<int:shop_id>",
        body=ShopPatch,
        auth=("member", "admin"),
        summary="Edit the shop's name, description or logo",
        tags=["shops"],
    )
    def shop_update(self, req):
        data = req.body.model_dump(exclude_unset=True)
        return self.rpc("shop").update_shop(_actor(req), req.params["shop_id"], data)

    @route(
        "POST",
        "/api/v1/shops/<int:shop_id>/verification",
        auth=("member", "admin"),
        summary="Shop verification (sandbox identity check) → active",
        tags=["shops"],
    )
    def shop_verify(self, req):
        return self.rpc("shop").verify_shop(_actor(req), req.params["shop_id"])

    @route(
        "PUT",
        "/api/v1/shops/<int:shop_id>/products/<int:product_id>",
        body=SelectionIn,
        auth=("member",),
        summary="Pick a catalog product into the shop, with a reason",
        tags=["shops"],
    )
    def shop_select_product(self, req):
        return self.rpc("shop").select_product(
            _actor(req),
            req.params["shop_id"],
            req.params["product_id"],
            req.body.model_dump(exclude_unset=True),
        )

    @route(
        "DELETE",
        "/api/v1/shops/<int:shop_id>/products/<int:product_id>",
        status=204,
        auth=("member",),
        summary="Remove a product from the shop",
        tags=["shops"],
    )
    def shop_unselect_product(self, req):
        self.rpc("shop").unselect_product(
            _actor(req), req.params["shop_id"], req.params["product_id"]
        )
        return Response(status=204)

    @route(
        "POST",
        "/api/v1/admin/levels/recalculate",
        body=RecalculateLevelsIn,
        auth=("admin",),
        summary="Recalculate keeper levels from a month's settled sales (idempotent per month)",
        tags=["admin"],
    )
    def shop_recalculate_levels(self, req):
        return self.rpc("shop").recalculate_levels(req.body.month)

    # --- suspension (issue 13) ------------------------------------------------------------
    @route(
        "POST",
        "/api/v1/admin/shops/<int:shop_id>/suspend",
        body=SuspensionIn,
        auth=("admin",),
        summary="Suspend a shop (its shares and pages show it unavailable, its commissions are "
        "held) with a recorded reason",
        tags=["admin"],
    )
    def shop_suspend(self, req):
        return self.rpc("shop").suspend_shop(
            _actor(req), req.params["shop_id"], req.body.model_dump()
        )

    @route(
        "POST",
        "/api/v1/admin/shops/<int:shop_id>/reinstate",
        body=SuspensionIn,
        auth=("admin",),
        summary="Reinstate a suspended shop, with a recorded reason",
        tags=["admin"],
    )
    def shop_reinstate(self, req):
        return self.rpc("shop").reinstate_shop(
            _actor(req), req.params["shop_id"], req.body.model_dump()
        )

    @route(
        "POST",
        "/api/v1/admin/members/<int:member_id>/suspend",
        body=SuspensionIn,
        auth=("admin",),
        summary="Suspend a keeper: every shop they own is suspended with them",
        tags=["admin"],
    )
    def shop_suspend_member(self, req):
        return self.rpc("shop").suspend_member(
            _actor(req), req.params["member_id"], req.body.model_dump()
        )

    @route(
        "POST",
        "/api/v1/admin/members/<int:member_id>/reinstate",
        body=SuspensionIn,
        auth=("admin",),
        summary="Reinstate a suspended keeper",
        tags=["admin"],
    )
    def shop_reinstate_member(self, req):
        return self.rpc("shop").reinstate_member(
            _actor(req), req.params["member_id"], req.body.model_dump()
        )
