"""The Jinja2 environment of the web pages: autoescaped, templates loaded once from the package.

Jinja2 (pallets) is the template engine: maintained, autoescaping by default, and fast enough
for the landing page's hot path because the rendered page is cached per share code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

STATUS_LABELS = {
    "created": "待付款",
    "paid": "已付款，待发货",
    "shipped": "已发货",
    "received": "已收货",
    "completed": "已完成",
    "cancelled": "已取消",
    "expired": "已超时关闭",
    "refunded": "已退款",
}
REFUND_LABELS = {"requested": "退款申请中", "approved": "已同意退款", "rejected": "退款被拒绝"}
ROUTED_LABELS = {"keeper": "掌柜", "supplier": "供货商", "platform": "平台"}
TOPIC_LABELS = {"product": "商品问题", "shipping": "物流", "refund": "退款", "other": "其他"}
LEVEL_CLASSES = {"newcomer": "lv1", "senior": "lv2", "elite": "lv3", "super": "lv4"}


def yuan(fen: Any) -> str:
    try:
        value = int(fen or 0)
    except (TypeError, ValueError):
        return "¥—"
    return f"¥{value // 100}.{value % 100:02d}"


def short_time(iso: Any) -> str:
    text = str(iso or "")
    return text[:16].replace("T", " ") if text else ""


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["yuan"] = yuan
    env.filters["short_time"] = short_time
    env.globals.update(
        STATUS_LABELS=STATUS_LABELS,
        REFUND_LABELS=REFUND_LABELS,
        ROUTED_LABELS=ROUTED_LABELS,
        TOPIC_LABELS=TOPIC_LABELS,
        LEVEL_CLASSES=LEVEL_CLASSES,
    )
    return env


ENV = _environment()


def render(template: str, **context: Any) -> str:
    return ENV.get_template(template).render(**context)
