"""HTTP routes of the share service (API.md): create a share, posters, resolve a pasted code,
the landing page ``/s/<code>`` and a shop's stats.

The landing page is the hot path, so it does no database work and usually no RPC at all:

* the page of a code is cached here for ``cache_seconds`` (the share service's
  ``landing_cache_seconds`` rule, 5 s by default), so a delisting shows within seconds;
* each visit is appended to an in-memory buffer and a timer sends the buffer to
  ``share.record_visits`` every half second (one RPC per batch); the share service decides which
  visits count (token buckets) and writes them in one transaction with a
  ``share_visits_recorded`` event.

Client identity (for flood control, decided in the share service: ``domain.VisitLimits``), from
``gateway.client``: the visitor is the signed ``xp_vid`` cookie the gateway issues (128 random
bits + HMAC; apps may send the same value in ``X-Xiaopu-Visitor``; a forged one is ignored and a
new one issued); the client address is the socket peer, or what a configured trusted proxy
says in ``X-Forwarded-For`` (nobody else's header counts).
A returning visitor is counted up to 5 visits then 1 per 12 s; cookie-less requests up to 60 per
address then 1/s; every address at most 2,000 then 20/s (one NAT address serves many buyers).
A flood still gets the page (HTTP 200: a buyer behind a busy NAT is not refused the product)
but beyond those limits its visits are not counted; only past the gateway's far higher request
limit (``gateway.ratelimit`` group ``landing``) is it answered 429. A delisted/unavailable product
shows a "no longer available" page (HTTP 200) linking to the shop.
"""

from __future__ import annotations

import base64
import html
import logging
import re
import threading
import time
from urllib.parse import quote

from nameko.extensions import DependencyProvider
from nameko.timer import timer
from werkzeug.wrappers import Response

from gateway.api import json_response, route
from gateway.web import landing
from shared.contracts.share import ResolveOut, ResolveQuery, ShareIn, ShareOut, StatsQuery
from shared.errors import NotFound
from shared.lru import LRU
from shared.validation import not_found

log = logging.getLogger(__name__)

_CODE = re.compile(r"^[A-Za-z0-9]{4,32}$")
MAX_BUFFERED = 50_000
MAX_PAGES = 10_000
FLUSH_SECONDS = 0.5


class LandingState:
    """Per gateway container: cached landing pages and the visit buffer."""

    def __init__(self):
        # code → (expires at, landing data, rendered page); each page lives for the share
        # service's ``cache_seconds`` (it comes with the page, so no single ttl for the cache)
        self.pages: LRU[str, tuple[float, dict, bytes]] = LRU(MAX_PAGES)
        self.visits: list[dict] = []
        self.lock = threading.Lock()
        self.dropped = 0

    def page(self, code: str) -> tuple[float, dict, bytes] | None:
        entry = self.pages.get(code)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry

    def keep(self, code: str, data: dict, body: bytes) -> tuple[float, dict, bytes]:
        ttl = float(data.get("cache_seconds") or 0)
        entry = (time.monotonic() + ttl, data, body)
        if ttl > 0 and not landing.held(data):  # not right after an invalidation
            self.pages.put(code, entry)
        return entry

    def add_visit(self, visit: dict) -> None:
        with self.lock:
            if len(self.visits) >= MAX_BUFFERED:
                self.dropped += 1
                return
            self.visits.append(visit)

    def take(self) -> list[dict]:
        with self.lock:
            taken, self.visits = self.visits, []
            return taken

    def put_back(self, visits: list[dict]) -> None:
        with self.lock:
            self.visits[:0] = visits[: max(0, MAX_BUFFERED - len(self.visits))]


class LandingStateProvider(DependencyProvider):
    def setup(self):
        self.state = LandingState()

    def get_dependency(self, worker_ctx):
        return self.state


class ShareRoutes:
    share_landing_state = LandingStateProvider()

    @route(
        "POST",
        "/api/v1/shares",
        body=ShareIn,
        response=ShareOut,
        status=201,
        auth=("member",),
        summary="Share a product of my shop: code, link, copy, 2 posters",
        tags=["shares"],
    )
    def share_create(self, req):
        return self.rpc("share").create_share(
            int(req.principal.sub),
            req.body.shop_id,
            req.body.product_id,
            fresh=req.body.fresh,
            public_url=self.public_url(),
        )

    @route(
        "GET",
        "/api/v1/shares/resolve",
        query=ResolveQuery,
        response=ResolveOut,
        summary="Find the share behind a pasted code (surrounding text allowed)",
        tags=["shares"],
        limit="share_resolve",
    )
    def share_resolve(self, req):
        vid, new = self.client.visitor(req.request)
        found = self.rpc("share").resolve(
            req.query.code,
            visitor_id=vid,
            kind="resolve",
            client=self.client.address(req.request),
        )
        found["url"] = f"{self.public_url()}/s/{found['code']}"
        resp = json_response(found)
        return self.client.set_cookie(resp, vid) if new else resp

    @route(
        "GET",
        "/api/v1/shares/<share_id>/posters/<style>",
        produces="image/jpeg",
        summary="A share's poster (style classic or card); its QR code opens the share",
        tags=["shares"],
        limit="lookup",
    )
    def share_poster(self, req):
        poster = self.rpc("share", timeout=30).get_poster(
            req.params["share_id"],
            req.params["style"],
            public_url=self.public_url(),
            if_none_match=req.headers.get("If-None-Match"),
        )
        headers = {"ETag": poster["etag"], "Cache-Control": "public, max-age=60"}
        if poster.get("not_modified"):
            return Response(status=304, headers=headers)
        return Response(
            base64.b64decode(poster["data_b64"]), mimetype=poster["content_type"], headers=headers
        )

    @route(
        "GET",
        "/api/v1/shares/<share_id>/image",
        produces="image/jpeg",
        summary="The shared product's photo (for the landing page)",
        tags=["shares"],
        limit="lookup",
    )
    def share_image(self, req):
        image = self.rpc("share", timeout=30).get_share_image(req.params["share_id"])
        return Response(
            base64.b64decode(image["data_b64"]),
            mimetype=image["content_type"],
            headers={"Cache-Control": "public, max-age=300"},
        )

    @route(
        "GET",
        "/api/v1/shops/<int:shop_id>/stats",
        query=StatsQuery,
        auth=("member", "admin"),
        summary="My shop's visits, orders, GMV and conversion by day and by share",
        tags=["shares"],
    )
    def share_shop_stats(self, req):
        shop_id = req.params["shop_id"]
        if not req.principal.is_admin:
            shop = self.rpc("shop").get_shop(shop_id)
            if str(shop.get("member_id")) != req.principal.sub:  # as if it did not exist
                raise not_found("shop", shop_id)
        return self.rpc("share").shop_stats(shop_id, since=req.query.since, until=req.query.until)

    @route(
        "GET",
        "/classic/s/<code>",
        produces="text/html",
        summary="A share's landing page (counts a visit; ?src=qr counts a scan)",
        tags=["shares"],
        limit="landing",
    )
    def share_landing(self, req):
        request = req.request
        code = str(req.params["code"]).strip().upper()
        entry = self.share_landing_state.page(code) if _CODE.match(code) else None
        if entry is None:
            try:
                if not _CODE.match(code):
                    raise NotFound("no such share", code="share_not_found")
                data = self.rpc("share").landing(code, public_url=self.public_url())
            except NotFound:
                return Response(render_missing().encode("utf-8"), status=404, mimetype="text/html")
            entry = self.share_landing_state.keep(code, data, render_landing(data).encode("utf-8"))
        _, data, body = entry
        vid, new = self.client.visitor(request)
        self.share_landing_state.add_visit(
            {
                "share_id": data["share_id"],
                "shop_id": data["shop_id"],
                "product_id": data["product_id"],
                "visitor_id": vid,
                "client": self.client.address(request),
                "new_visitor": new,
                "kind": "scan" if request.args.get("src") == "qr" else "landing",
                "t": time.monotonic(),
            }
        )
        resp = Response(
            body,
            status=410 if shop_suspended(data) else 200,
            mimetype="text/html",
            headers={"Cache-Control": "private, no-cache"},
        )
        return self.client.set_cookie(resp, vid) if new else resp

    @timer(interval=FLUSH_SECONDS)
    def share_flush_visits(self):
        batch = self.share_landing_state.take()
        if not batch:
            return
        now = time.monotonic()
        payload = [
            {k: v for k, v in visit.items() if k != "t"}
            | {"age_ms": int(max(0.0, now - visit["t"]) * 1000)}
            for visit in batch
        ]
        try:
            self.rpc("share").record_visits(payload)
        except Exception as exc:  # share is away: keep them for the next tick
            log.warning("could not hand %d visits to share (%s); retrying", len(batch), exc)
            self.share_landing_state.put_back(batch)


# --- HTML ---------------------------------------------------------------------------------
_STYLE = """
*{box-sizing:border-box}body{margin:0;font-family:-apple-system,"PingFang SC","Microsoft YaHei",
sans-serif;background:#f6f6f6;color:#222}main{max-width:640px;margin:0 auto;background:#fff;
min-height:100vh}.photo{width:100%;aspect-ratio:1/1;object-fit:cover;display:block;background:#fee}
.body{padding:16px}.shop{color:#666;font-size:14px}h1{font-size:20px;line-height:1.4;margin:8px 0}
.price{color:#e62828;font-size:28px;font-weight:bold}.reason{background:#fff4ee;color:#965040;
border-radius:10px;padding:12px;margin:12px 0;line-height:1.6}.code{color:#888;font-size:13px;
margin-top:12px;word-break:break-all}.buy{display:block;text-align:center;background:#ff463c;
color:#fff;text-decoration:none;font-size:18px;padding:14px;border-radius:24px;margin-top:16px}
.gone{padding:40px 16px;text-align:center}.gone a{color:#ff463c}
"""


def _page(title: str, content: str) -> str:
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{content}</main></body></html>"
    )


def shop_suspended(d: dict) -> bool:
    """The share's shop is suspended by the platform: the page says so (HTTP 410)."""
    return d.get("shop_status") == "suspended"


def render_landing(d: dict) -> str:
    e = html.escape
    if shop_suspended(d):
        return _page(
            "小铺暂停营业",
            (
                f'<div class="gone"><h1>{e(d.get("shop_name") or "这家小铺")}暂停营业</h1>'
                "<p>这家小铺已暂停营业，暂时无法浏览和购买。</p></div>"
            ),
        )
    shop_link = f"/api/v1/shops/by-number/{quote(str(d.get('shop_number') or ''))}"
    shop = (
        f'<div class="shop">来自 <a href="{e(shop_link)}">{e(d["shop_name"])}</a>'
        f" · 店铺号 {e(str(d.get('shop_number') or ''))}</div>"
    )
    if not d.get("available"):
        return _page(
            "商品已下架",
            (
                f'<div class="gone">{shop}<h1>{e(d["title"] or "这个商品")}</h1>'
                "<p>这个商品已下架或暂时缺货，暂时买不到了。</p>"
                f'<p><a href="{e(shop_link)}">去店铺看看其他商品</a></p></div>'
            ),
        )
    image = (
        f'<img class="photo" src="{e(d["image"])}" alt="{e(d["title"])}">' if d.get("image") else ""
    )
    reason = f'<div class="reason">掌柜推荐：{e(d["reason"])}</div>' if d.get("reason") else ""
    buy = (
        f"xiaopu://order?product_id={int(d['product_id'])}&share_code={quote(d['code'])}"
        f"&shop_number={quote(str(d.get('shop_number') or ''))}"
    )
    return _page(
        d["title"],
        (
            f'{image}<div class="body">{shop}<h1>{e(d["title"])}</h1>'
            f'<div class="price">{e(d["price"])}</div>{reason}'
            f'<a class="buy" href="{e(buy)}" data-share-code="{e(d["code"])}" '
            f'data-product-id="{int(d["product_id"])}">立即购买</a>'
            f'<div class="code">在小铺App中粘贴口令 {e(d["display_code"])} 也能打开这个商品</div>'
            "</div>"
        ),
    )


def render_missing() -> str:
    return _page(
        "分享不存在", '<div class="gone"><h1>这个分享不存在</h1><p>链接或口令可能输错了。</p></div>'
    )
