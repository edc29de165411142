"""The workbenches (issue 17): ``/keeper`` for a shop's keeper (掌柜), ``/supplier`` for a
supplier, both phone-first, plus the keeper's charts as server-drawn SVG.

The pages are shells rendered with what the server knows for sure (who is signed in, which
shop); their sections are filled by ``static/workbench.js`` from the JSON API with the bearer
token, so they follow the API as it grows: a field that is absent (``keeper_earn_fen``,
``scans``/``opens``/``pastes``, ``decide_by``) or a route that answers 404 (the level's
progress, the supplier's refund queue or balance) hides what it would feed instead of
breaking the page. Charts read the same stats the API serves (``share.shop_stats``).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Response

from gateway.api import route
from gateway.web.charts import Series, horizontal_bars, stacked_bars
from gateway.web.pages import html, problem
from gateway.web.render import render
from shared import clock
from shared.errors import NotFound, XiaopuError

CHART_DAYS = 14
KEEPER_SIGNIN = "掌柜用手机号登录，进入工作台"
SUPPLIER_SIGNIN = "供货商用注册时的联系手机号登录"
# visits by how the buyer arrived; the stats carry these counts once the API splits them
VISIT_KINDS = (
    ("scans", "扫码", "#ff463c"),
    ("opens", "打开链接", "#ff9f8f"),
    ("pastes", "粘贴口令", "#ffd08a"),
)
VISITS = ("visits", "访问", "#ff7a66")


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def split_kinds(entries: list[dict]) -> bool:
    """Whether the stats tell scans, opens and pastes apart (any entry carries them)."""
    return any(k in e for e in entries for k, _, _ in VISIT_KINDS)


def visit_series(entries: list[dict]) -> list[Series]:
    if split_kinds(entries):
        return [Series(label, [_int(e.get(k)) for e in entries], c) for k, label, c in VISIT_KINDS]
    key, label, color = VISITS
    return [Series(label, [_int(e.get(key)) for e in entries], color)]


def stats_today(stats: dict, now_utc: Any) -> date:
    """The stats' "today": the platform clock in the stats' day offset (China: UTC+8)."""
    offset = _int(stats.get("day_utc_offset_hours"))
    return (now_utc + timedelta(hours=offset)).date()


def last_days(stats: dict, today: date, days: int = CHART_DAYS) -> list[dict]:
    """One entry per day for the last ``days`` days ending ``today`` (quiet days are zeros)."""
    by_day = {str(d.get("day")): d for d in stats.get("by_day") or []}
    out = []
    for back in range(days - 1, -1, -1):
        day = (today - timedelta(days=back)).isoformat()
        out.append(by_day.get(day) or {"day": day})
    return out


def day_label(iso_day: str) -> str:
    _, month, day = iso_day.split("-")
    return f"{int(month)}/{int(day)}"


def days_chart(stats: dict, today: date) -> str:
    entries = last_days(stats, today)
    return stacked_bars(
        [day_label(e["day"]) for e in entries],
        visit_series(entries),
        title=f"近 {CHART_DAYS} 天访问与订单",
        line=[_int(e.get("orders")) for e in entries],
        line_name="订单",
    )


def shares_chart(stats: dict, limit: int = 8) -> str:
    entries = [s for s in stats.get("by_share") or [] if s.get("share_id")][:limit]
    return horizontal_bars(
        [str(s.get("code") or "—") for s in entries],
        visit_series(entries),
        title="各分享的访问",
        notes=[f"{_int(s.get('orders'))} 单" for s in entries],
    )


CHARTS = {"days": days_chart, "shares": lambda stats, today: shares_chart(stats)}


class WorkbenchRoutes:
    if TYPE_CHECKING:  # provided by GatewayService (gateway/service.py) and WebRoutes

        def rpc(self, service: str, timeout: float | None = None) -> Any: ...

        def page_viewer(self, request: Any, role: str = "member") -> dict | None: ...

    def _own_shop(self, viewer: dict, shop_id: int) -> dict:
        shop = self.rpc("shop").get_shop(shop_id)
        if str(shop.get("member_id")) != str(viewer["id"]):  # as if it did not exist
            raise NotFound("no such shop", code="shop_not_found")
        return shop

    @route(
        "GET",
        "/keeper",
        produces="text/html",
        summary="The keeper's workbench (掌柜): today, catalog, share, questions, stats, money",
        limit="lookup",
    )
    def web_keeper(self, req):
        viewer = self.page_viewer(req.request)
        if viewer is None:
            return html(
                render("signin_page.html", title="掌柜工作台", role="member", intro=KEEPER_SIGNIN)
            )
        try:
            me = self.rpc("shop").me(viewer["id"])
        except XiaopuError:
            return problem("工作台暂时打不开", "请稍后再试。", 503)
        shops = me.get("shops") or []
        wanted = str(req.request.args.get("shop_id") or "")
        shop = next((s for s in shops if str(s["id"]) == wanted), shops[0] if shops else None)
        return html(render("keeper.html", me=me, shop=shop, shops=shops))

    @route(
        "GET",
        "/supplier",
        produces="text/html",
        summary="The supplier's workbench: products, orders to ship, refunds, questions, balance",
        limit="lookup",
    )
    def web_supplier(self, req):
        viewer = self.page_viewer(req.request, role="supplier")
        if viewer is None:
            return html(
                render(
                    "signin_page.html", title="供货商工作台", role="supplier", intro=SUPPLIER_SIGNIN
                )
            )
        try:
            supplier = self.rpc("catalog").get_supplier(viewer["id"])
        except NotFound:
            return html(
                render(
                    "signin_page.html", title="供货商工作台", role="supplier", intro=SUPPLIER_SIGNIN
                )
            )
        except XiaopuError:
            return problem("工作台暂时打不开", "请稍后再试。", 503)
        return html(render("supplier.html", supplier=supplier))

    @route(
        "GET",
        "/keeper/charts/<kind>.svg",
        produces="image/svg+xml",
        summary="A chart of the keeper's stats (days: visits and orders per day; shares: "
        "visits per share), split into scans, opens and pastes when the stats are",
        limit="lookup",
    )
    def web_keeper_chart(self, req):
        draw = CHARTS.get(str(req.params["kind"]))
        viewer = self.page_viewer(req.request)
        shop_id = _int(req.request.args.get("shop_id"))
        if draw is None or viewer is None or not 0 < shop_id < 2**31:
            return problem("没有这个图表", "请从工作台打开。", 404)
        try:
            self._own_shop(viewer, shop_id)
            now = clock.now()
            since = (now - timedelta(days=CHART_DAYS + 1)).date().isoformat()
            stats = self.rpc("share").shop_stats(shop_id, since=since, until=None)
        except NotFound:
            return problem("没有这个图表", "请从工作台打开。", 404)
        svg = draw(stats, stats_today(stats, now))
        return Response(
            svg, mimetype="image/svg+xml", headers={"Cache-Control": "private, no-cache"}
        )
