"""The workbench's server-drawn charts (gateway.web.charts, gateway.web.workbench) and its pages'
templates: pure functions, tested as text."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime

from gateway.web.charts import Series, horizontal_bars, nice_ticks, stacked_bars
from gateway.web.render import render
from gateway.web.workbench import days_chart, last_days, shares_chart, stats_today

SVG = "{http://www.w3.org/2000/svg}"


def bars(svg: str) -> list[tuple[str, int]]:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    return [
        (r.get("data-series"), int(r.get("data-value")))
        for r in root.iter()
        if r.get("data-value") is not None
    ]


def texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_axis_ticks_are_round_and_cover_the_peak():
    assert nice_ticks(0) == [0, 1]
    assert nice_ticks(7) == [0, 2, 4, 6, 8]
    assert nice_ticks(37) == [0, 10, 20, 30, 40]
    assert nice_ticks(1234)[-1] >= 1234
    assert len(nice_ticks(999_999)) <= 6


def test_stacked_bars_draw_each_value_with_its_series_and_the_orders_line():
    svg = stacked_bars(
        ["3/1", "3/2"],
        [Series("扫码", [3, 0], "#f00"), Series("打开链接", [1, 2], "#0f0")],
        title="访问",
        line=[1, 0],
        line_name="订单",
    )
    assert bars(svg) == [("扫码", 3), ("打开链接", 1), ("打开链接", 2), ("订单", 1)]
    labels = texts(svg)
    assert {"扫码", "打开链接", "订单", "3/1", "3/2"} <= set(labels)
    assert "4" in labels  # the day's total over its column


def test_an_empty_chart_says_so():
    assert "暂无数据" in texts(stacked_bars([], [Series("访问", [], "#f00")], title="访问"))
    assert "暂无数据" in texts(horizontal_bars([], [Series("访问", [], "#f00")], title="分享"))


def test_labels_are_escaped():
    svg = horizontal_bars(["<b>&"], [Series("访问", [2], "#f00")], title="<x>", notes=["1 单"])
    assert "<b>" not in svg and "&lt;b&gt;&amp;" in svg
    assert "<b>&" in texts(svg)


def test_horizontal_rows_never_overlap():
    svg = horizontal_bars([f"C{i}" for i in range(6)], [Series("访问", [5] * 6, "#f00")], "x")
    ys = [float(r.get("y")) for r in ET.fromstring(svg).iter(f"{SVG}rect") if r.get("data-value")]
    heights = [
        float(r.get("height")) for r in ET.fromstring(svg).iter(f"{SVG}rect") if r.get("data-value")
    ]
    assert all(ys[i] + heights[i] <= ys[i + 1] for i in range(len(ys) - 1))
    view_h = float(ET.fromstring(svg).get("viewBox").split()[3])
    assert ys[-1] + heights[-1] <= view_h


STATS = {
    "shop_id": 1,
    "day_utc_offset_hours": 8,
    "by_day": [
        {"day": "2026-03-01", "visits": 5, "orders": 1, "gmv_fen": 100},
        {"day": "2026-02-01", "visits": 9, "orders": 0, "gmv_fen": 0},  # outside 14 days
    ],
    "by_share": [
        {"share_id": "s1", "code": "AB12CD34", "visits": 5, "orders": 1, "gmv_fen": 100},
        {"share_id": None, "code": None, "visits": 0, "orders": 2, "gmv_fen": 300},
    ],
}


def test_the_stats_day_is_the_platform_clock_in_the_stats_offset():
    late = datetime(2026, 3, 1, 17, 30, tzinfo=UTC)  # 01:30 on 2 March in China
    assert stats_today(STATS, late) == date(2026, 3, 2)
    assert stats_today({}, late) == date(2026, 3, 1)


def test_quiet_days_are_zeros_and_old_days_are_left_out():
    days = last_days(STATS, date(2026, 3, 2))
    assert len(days) == 14 and days[-1] == {"day": "2026-03-02"}
    assert days[-2]["visits"] == 5
    assert all(d["day"] >= "2026-02-17" for d in days)


def test_visits_are_one_series_until_the_stats_split_them():
    plain = days_chart(STATS, date(2026, 3, 2))
    assert ("访问", 5) in bars(plain) and ("订单", 1) in bars(plain)
    split = {
        **STATS,
        "by_day": [{"day": "2026-03-01", "visits": 6, "scans": 3, "opens": 2, "pastes": 1}],
    }
    drawn = bars(days_chart(split, date(2026, 3, 2)))
    assert ("扫码", 3) in drawn and ("打开链接", 2) in drawn and ("粘贴口令", 1) in drawn
    assert not any(name == "访问" for name, _ in drawn)


def test_the_shares_chart_shows_each_share_by_its_code_not_the_unshared_orders():
    svg = shares_chart(STATS)
    assert "AB12CD34" in texts(svg)
    assert bars(svg) == [("访问", 5)]
    assert any(re.fullmatch(r"5 · 1 单", t) for t in texts(svg))


def test_workbench_pages_carry_the_api_field_names_and_actions():
    keeper = render(
        "keeper.html",
        me={"nickname": "阿珍"},
        shop={
            "id": 7,
            "shop_number": "123456",
            "display_name": "阿珍好物",
            "level": "senior",
            "level_label": "资深",
            "level_bonus_bps": 100,
            "status": "active",
        },
        shops=[],
    )
    for needle in (
        'data-shop-id="7"',
        'name="q"',
        'name="sort"',
        'name="amount_fen"',
        'name="copy_text"',
        'name="copy_comment"',
        'data-action="withdraw"',
        'data-action="copy"',
        "店铺号 <b>123456</b>",
        "+1%",
    ):
        assert needle in keeper, needle
    supplier = render("supplier.html", supplier={"id": 3, "name": "山野", "status": "active"})
    for needle in (
        'data-supplier-id="3"',
        'data-action="ship"',
        'name="price_fen"',
        'name="stock"',
    ):
        assert needle in supplier, needle
    signin = render("signin_page.html", title="供货商工作台", role="supplier", intro="x")
    assert 'data-signin-role="supplier"' in signin and 'name="nickname"' not in signin
