"""Routes of the web pages (API.md v1.1 "Web pages"); ``GatewayService`` inherits ``WebRoutes``.

* ``/``                    paste a share code (a whole pasted message works) or type a 店铺号
* ``/go?code=|shop_number=`` resolves what was pasted or typed and redirects
* ``/shop/<n>``            the shop: name, level badge, products with the keeper's reasons
* ``/shop/<n>/p/<id>``     a product inside a shop (bought from there: attributed by shop number)
* ``/s/<code>``            the share landing page with a working checkout (landing.py)
* ``/my/orders``, ``/my/orders/<id>``  the buyer's orders: status, history, who handles what,
                           the question thread, refund request
* ``/static/<file>``       our CSS and JavaScript (no CDN)

Pages are read with the ``xp_at`` cookie (the access token the page's JavaScript stores after
sign-in); every change goes through the JSON API with the bearer token, so the cookie never
authorises a write (no CSRF surface).
"""

from __future__ import annotations

import mimetypes
import re
import time

from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from gateway.api import route
from gateway.web import landing
from gateway.web.render import STATIC, render
from shared.errors import Gone, NotFound, Unauthorized, XiaopuError

ACCESS_COOKIE = "xp_at"
SHOP_NUMBER = re.compile(r"(?<!\d)(\d{6})(?!\d)")
STATIC_FILES = {p.name for p in STATIC.iterdir() if p.is_file()}


def html(body: str | bytes, status: int = 200, private: bool = True) -> Response:
    return Response(
        body,
        status=status,
        mimetype="text/html",
        headers={"Cache-Control": "private, no-cache" if private else "public, max-age=60"},
    )


def problem(title: str, message: str, status: int) -> Response:
    return html(render("missing.html", title=title, message=message), status)


class WebRoutes:
    def page_viewer(self, request, role: str = "member") -> dict | None:
        """The signed-in ``role`` (a buyer or keeper: member) of a page request (the ``xp_at``
        cookie), or None."""
        token = request.cookies.get(ACCESS_COOKIE)
        if not token:
            return None
        try:
            principal = self.tokens.verify(f"Bearer {token}")
        except Unauthorized:
            return None
        if principal is None or principal.role != role:
            return None
        return {"role": principal.role, "id": principal.sub}

    @route(
        "GET",
        "/",
        produces="text/html",
        summary="Home: paste a share code or a shop number",
        limit="lookup",
    )
    def web_home(self, req):
        return html(render("home.html", error=None, code="", shop_number=""))

    @route(
        "GET",
        "/go",
        produces="text/html",
        summary="Open what was pasted (口令) or typed (店铺号)",
        limit="share_resolve",
    )
    def web_go(self, req):
        args = req.request.args
        code = (args.get("code") or "").strip()[:4000]
        number = (args.get("shop_number") or "").strip()
        if not number and SHOP_NUMBER.fullmatch(code):
            number, code = code, ""
        if number:
            if SHOP_NUMBER.fullmatch(number):
                return redirect(f"/shop/{number}", 303)
            return self.web_home_error("店铺号是 6 位数字", code, number)
        if not code:
            return self.web_home_error("请粘贴口令或输入店铺号", code, number)
        vid, new = self.client.visitor(req.request)
        try:
            found = self.rpc("share").resolve(
                code, visitor_id=vid, kind="resolve", client=self.client.address(req.request)
            )
        except NotFound:
            typed = SHOP_NUMBER.search(code)
            if typed:
                return redirect(f"/shop/{typed.group(1)}", 303)
            return self.web_home_error("没有找到这个口令，请检查后再试", code, number)
        resp = redirect(landing.share_url(found["code"]), 303)
        return self.client.set_cookie(resp, vid) if new else resp

    def web_home_error(self, message: str, code: str, number: str) -> Response:
        return html(render("home.html", error=message, code=code, shop_number=number), 404)

    @route(
        "GET",
        "/shop/<shop_number>",
        produces="text/html",
        summary="A shop's page (店铺号)",
        limit="shop_lookup",
    )
    def web_shop(self, req):
        number = str(req.params["shop_number"])
        try:
            if not SHOP_NUMBER.fullmatch(number):
                raise NotFound("no such shop", code="shop_not_found")
            shop = self.rpc("shop").public_shop(number, 100, None)
        except NotFound:
            return problem("没有这个店铺", f"店铺号 {number} 不存在或暂未开张。", 404)
        except Gone as exc:  # suspended by the platform
            return problem("小铺暂停营业", exc.message, 410)
        except XiaopuError:
            return problem("店铺暂时打不开", "请稍后再试。", 503)
        return html(render("shop.html", shop=shop))

    @route(
        "GET",
        "/shop/<shop_number>/p/<int:product_id>",
        produces="text/html",
        summary="A product inside a shop, with the checkout (attributed by shop number)",
        limit="shop_lookup",
    )
    def web_shop_product(self, req):
        number = str(req.params["shop_number"])
        try:
            if not SHOP_NUMBER.fullmatch(number):
                raise NotFound("no such shop", code="shop_not_found")
            body = landing.shop_product_page(self, number, req.params["product_id"])
        except NotFound:
            body = None
        except XiaopuError:
            return problem("商品暂时打不开", "请稍后再试。", 503)
        if body is None:
            return problem("没有这个商品", "这个店铺里没有这个商品。", 404)
        return html(body)

    @route(
        "GET",
        landing.LANDING_PATH,
        produces="text/html",
        summary="A share's landing page with checkout (counts a visit; ?src=qr counts a scan)",
        limit="landing",
    )
    def web_share_landing(self, req):
        request = req.request
        try:
            found = landing.share_page(self, str(req.params["code"]))
        except XiaopuError:
            return problem("页面暂时打不开", "请稍后再试。", 503)
        if found is None:
            return problem("这个分享不存在", "链接或口令可能输错了。", 404)
        facts, body = found
        if facts.get("shop_status") == "suspended":  # suspended by the platform: not for sale
            name = facts.get("shop_name") or "这家小铺"
            return problem(f"{name}暂停营业", "这家小铺已暂停营业，暂时无法浏览和购买。", 410)
        vid, new = self.client.visitor(request)  # the signed visitor cookie (gateway.client)
        state = getattr(self, "share_landing_state", None)
        if state is not None:  # counted like every landing visit (routes/share.py buffers them)
            state.add_visit(
                {
                    "share_id": facts["share_id"],
                    "shop_id": facts["shop_id"],
                    "product_id": facts["product_id"],
                    "visitor_id": vid,
                    "client": self.client.address(request),
                    "new_visitor": new,
                    "kind": "scan" if request.args.get("src") == "qr" else "landing",
                    "t": time.monotonic(),
                }
            )
        resp = html(body)
        return self.client.set_cookie(resp, vid) if new else resp

    @route(
        "GET",
        "/my/orders",
        produces="text/html",
        summary="My orders (signed-in buyer)",
        limit="lookup",
    )
    def web_my_orders(self, req):
        viewer = self.page_viewer(req.request)
        if viewer is None:
            return html(render("signin_page.html", title="我的订单"))
        try:
            orders = self.rpc("orders").list_orders(viewer, {"limit": 50})
        except XiaopuError:
            return problem("订单暂时打不开", "请稍后再试。", 503)
        return html(render("orders.html", orders=orders["items"]))

    @route(
        "GET",
        "/my/orders/<int:order_id>",
        produces="text/html",
        summary="One of my orders: status, history, who handles what, questions, refund",
        limit="lookup",
    )
    def web_my_order(self, req):
        viewer = self.page_viewer(req.request)
        if viewer is None:
            return html(render("signin_page.html", title="订单详情"))
        order_id = req.params["order_id"]
        try:
            order = self.rpc("orders").get_order(order_id, viewer)
            if order.get("viewer") != "buyer":
                raise NotFound("not your order", code="order_not_found")
            contacts = self.rpc("messages").order_contacts(order_id, viewer)
            asked = contacts["pre_sales"]["contact"]["threads"]  # this order's, oldest first
            thread = [self.rpc("messages").get_thread(t["id"], viewer) for t in asked]
        except NotFound:
            return problem("没有这个订单", "订单不存在，或不是你的订单。", 404)
        except XiaopuError:
            return problem("订单暂时打不开", "请稍后再试。", 503)
        return html(render("order.html", order=order, contacts=contacts, thread=thread))

    @route("GET", "/static/<name>", produces="text/css", summary="The pages' CSS and JavaScript")
    def web_static(self, req):
        name = str(req.params["name"])
        if name not in STATIC_FILES:
            return problem("没有这个文件", name, 404)
        mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        data = (STATIC / name).read_bytes()
        return Response(data, mimetype=mimetype, headers={"Cache-Control": "public, max-age=300"})
