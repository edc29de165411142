"""Charts of the workbench drawn on the server as SVG, in pure Python.

Why not a chart library: the keeper's stats need two small charts (visits per day, visits per
share), each a few dozen shapes. An SVG string renders on every phone browser without
JavaScript, scales crisply, carries Chinese labels in the page's own fonts, weighs ~2-4 KB,
and is testable as text (the bars' numbers are in the markup). ECharts vendored with its
licence would be ~1 MB of JavaScript to serve, parse and keep up to date for the same two
pictures. Should the workbench need zooming or tooltips later, vendoring it remains open.

Every function is pure (data in, markup out); labels are escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

FONT = (
    "-apple-system,BlinkMacSystemFont,'PingFang SC','Hiragino Sans GB','Microsoft YaHei',"
    "'Noto Sans CJK SC','WenQuanYi Micro Hei',sans-serif"
)
AXIS = "#999"
GRID = "#eee"
INK = "#555"


@dataclass(frozen=True)
class Series:
    name: str  # the legend's label (Chinese)
    values: Sequence[int]
    color: str


def nice_ticks(top: int, most: int = 5) -> list[int]:
    """Round axis ticks from 0 covering ``top``: steps of 1, 2 or 5 × 10ⁿ, at most ``most``+1."""
    top = max(int(top), 1)
    magnitude = 1
    while True:
        for base in (1, 2, 5):
            step = base * magnitude
            if top / step <= most:
                count = -(-top // step)  # ceil
                return [i * step for i in range(count + 1)]
        magnitude *= 10


def _text_width(text: str, size: int = 11) -> float:
    """About how wide ``text`` is drawn: a CJK character is square, Latin about 0.62 of it."""
    return sum(size if ord(ch) > 0x2E80 else size * 0.62 for ch in text)


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(label)}" '
        f'font-family="{FONT}" font-size="11">'
        f"<title>{escape(label)}</title>" + "".join(body) + "</svg>"
    )


def _legend(series: Sequence[Series], x: float, y: float, extra: str | None = None) -> list[str]:
    out: list[str] = []
    for s in series:
        out.append(
            f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" rx="2" fill="{s.color}"/>'
        )
        out.append(f'<text x="{x + 14:.1f}" y="{y:.1f}" fill="{INK}">{escape(s.name)}</text>')
        x += 14 + 13 * len(s.name) + 12
    if extra:
        out.append(
            f'<line x1="{x:.1f}" y1="{y - 4:.1f}" x2="{x + 14:.1f}" y2="{y - 4:.1f}" '
            'stroke="#333" stroke-width="2"/>'
        )
        out.append(f'<text x="{x + 18:.1f}" y="{y:.1f}" fill="{INK}">{escape(extra)}</text>')
    return out


def stacked_bars(
    labels: Sequence[str],
    series: Sequence[Series],
    title: str,
    line: Sequence[int] | None = None,
    line_name: str = "",
    width: int = 360,
    height: int = 220,
) -> str:
    """Vertical stacked bars (one column per label, one band per series), with an optional
    line on the same axis (e.g. orders over visits). Labels thin out when columns are narrow."""
    n = len(labels)
    left, right, top, bottom = 34, 8, 28, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s.values[i] for s in series) for i in range(n)]
    peak = max([*totals, *(line or []), 1])
    ticks = nice_ticks(peak)
    scale = plot_h / ticks[-1]
    body = _legend(series, left, 14, line_name if line is not None else None)
    for t in ticks:
        y = top + plot_h - t * scale
        body.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        body.append(
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="{AXIS}">{t}</text>'
        )
    if n == 0:
        body.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
            f'fill="{AXIS}">暂无数据</text>'
        )
        return _svg(width, height, title, body)
    slot = plot_w / n
    bar = max(min(slot * 0.62, 28), 2)
    every = max(1, -(-32 // int(max(slot, 1))))  # a label at most every ~32 px
    for i, label in enumerate(labels):
        x = left + i * slot + (slot - bar) / 2
        y = top + plot_h
        parts = []
        for s in series:
            v = int(s.values[i])
            if v <= 0:
                continue
            h = v * scale
            y -= h
            parts.append(f"{s.name} {v}")
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{s.color}" data-series="{escape(s.name)}" data-value="{v}"/>'
            )
        if totals[i] and slot >= 16:
            body.append(
                f'<text x="{x + bar / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" '
                f'fill="{INK}" font-size="10">{totals[i]}</text>'
            )
        if (n - 1 - i) % every == 0:  # counted from the last column: today always has its label
            body.append(
                f'<text x="{left + i * slot + slot / 2:.1f}" y="{height - 8}" '
                f'text-anchor="middle" fill="{AXIS}">{escape(label)}</text>'
            )
    body.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" '
        f'stroke="{AXIS}"/>'
    )
    if line is not None:
        points = " ".join(
            f"{left + i * slot + slot / 2:.1f},{top + plot_h - int(v) * scale:.1f}"
            for i, v in enumerate(line)
        )
        body.append(f'<polyline points="{points}" fill="none" stroke="#333" stroke-width="2"/>')
        for i, v in enumerate(line):
            if int(v) > 0:
                cx, cy = left + i * slot + slot / 2, top + plot_h - int(v) * scale
                body.append(
                    f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="#333" '
                    f'data-series="{escape(line_name)}" data-value="{int(v)}"/>'
                )
    return _svg(width, height, title, body)


def horizontal_bars(
    labels: Sequence[str],
    series: Sequence[Series],
    title: str,
    notes: Sequence[str] | None = None,
    width: int = 360,
    row: int = 26,
) -> str:
    """One row per label (e.g. a share code), stacked bands per series, a note at the row's end
    (e.g. its orders). Rows never overlap: the height grows with the rows."""
    n = len(labels)
    longest = max((_text_width(label) for label in labels), default=0)
    left, right, top = int(min(max(longest + 12, 48), width * 0.4)), 64, 28
    height = top + max(n, 1) * row + 8
    plot_w = width - left - right
    totals = [sum(s.values[i] for s in series) for i in range(n)]
    ticks = nice_ticks(max([*totals, 1]), most=4)
    scale = plot_w / ticks[-1]
    body = _legend(series, 8, 14)
    if n == 0:
        body.append(
            f'<text x="{width / 2:.1f}" y="{top + row / 2 + 4:.1f}" text-anchor="middle" '
            f'fill="{AXIS}">暂无数据</text>'
        )
        return _svg(width, height, title, body)
    for i, label in enumerate(labels):
        y = top + i * row
        body.append(
            f'<text x="{left - 6}" y="{y + row / 2 + 4:.1f}" text-anchor="end" '
            f'fill="{INK}">{escape(label)}</text>'
        )
        x = float(left)
        for s in series:
            v = int(s.values[i])
            if v <= 0:
                continue
            w = v * scale
            body.append(
                f'<rect x="{x:.1f}" y="{y + 5}" width="{w:.1f}" height="{row - 10}" '
                f'fill="{s.color}" data-series="{escape(s.name)}" data-value="{v}"/>'
            )
            x += w
        note = f"{totals[i]}" + (f" · {notes[i]}" if notes else "")
        body.append(
            f'<text x="{x + 4:.1f}" y="{y + row / 2 + 4:.1f}" fill="{INK}" '
            f'font-size="10">{escape(note)}</text>'
        )
    return _svg(width, height, title, body)
