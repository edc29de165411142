"""Bounded requests (issue 13): every request the gateway reads is bounded before it is read.

* Body size: ``XIAOPU_MAX_BODY_BYTES`` (1 MiB); the product routes that carry an uploaded image
  (``image_base64``) ``XIAOPU_MAX_UPLOAD_BYTES`` (8 MiB: the catalog's 5 MB image, base64'd).
  A declared ``Content-Length`` above the limit is refused before a byte is read; a chunked body
  is read in slices and refused as soon as it passes the limit — 413 ``body_too_large``, so a
  300 MB body is never buffered.
* JSON depth: ``XIAOPU_MAX_JSON_DEPTH`` (32) nested arrays/objects, counted without recursion
  before ``json.loads`` sees the body (which would raise RecursionError) — 400 ``json_too_deep``.
* Request line: ``XIAOPU_MAX_URL_BYTES`` (64 KiB; eventlet's default is 8 KiB, less than a
  pasted share message of the documented 4,000 characters in ``/shares/resolve?code=``); longer
  is eventlet's 414.
* Methods: a known path asked with a method it does not declare answers 405 with ``Allow``.
* Errors on page paths (everything outside ``/api/``: ``/s/…``, ``/shop/…``, ``/my/…``, ``/``)
  are a Chinese HTML page; on ``/api/`` paths the JSON envelope.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nameko.web.server import WsgiApp
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from shared.errors import BadRequest, XiaopuError

MIB = 1024 * 1024
READ_SLICE = 64 * 1024
# routes whose JSON body may carry an uploaded image (ProductIn / ProductPatch.image_base64)
UPLOAD_ROUTES = (
    ("POST", re.compile(r"^/api/v1/products/?$")),
    ("PATCH", re.compile(r"^/api/v1/products/\d+/?$")),
)
# JSON strings (escapes included) are skipped when counting depth: brackets inside them are text
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class PayloadTooLarge(XiaopuError):
    status = 413
    code = "body_too_large"


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = MIB
    max_upload_bytes: int = 8 * MIB
    max_json_depth: int = 32
    max_url_bytes: int = 64 * 1024

    @classmethod
    def from_config(cls, config: Any) -> Limits:
        config = config or {}
        return cls(
            int(config.get("XIAOPU_MAX_BODY_BYTES") or cls.max_body_bytes),
            int(config.get("XIAOPU_MAX_UPLOAD_BYTES") or cls.max_upload_bytes),
            int(config.get("XIAOPU_MAX_JSON_DEPTH") or cls.max_json_depth),
            int(config.get("XIAOPU_MAX_URL_BYTES") or cls.max_url_bytes),
        )

    def body_limit(self, method: str, path: str) -> int:
        if any(method == m and rx.match(path) for m, rx in UPLOAD_ROUTES):
            return max(self.max_upload_bytes, self.max_body_bytes)
        return self.max_body_bytes

    def check(self, request: Request) -> None:
        """Read the body within the limit (cached for ``request.get_data``) and check its JSON
        depth; 413 / 400 otherwise."""
        raw = read_body(request, self.body_limit(request.method, request.path))
        check_json_depth(raw, self.max_json_depth)


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than {limit} bytes",
        details={"max_bytes": limit},
        code="body_too_large",
    )


def read_body(request: Request, limit: int) -> bytes:
    """The body, read in slices and never more than ``limit`` + one slice of it; a declared
    ``Content-Length`` over the limit is refused before reading. The bytes are cached on the
    request, so ``request.get_data(cache=True)`` returns them afterwards."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large(limit)
    environ = request.environ
    chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
    if declared is None and not chunked:
        data = b""
    else:
        # werkzeug's stream is empty for a chunked body (the server does not say the input is
        # terminated); eventlet's input reads the chunks itself
        stream = environ["wsgi.input"] if declared is None else request.stream
        parts: list[bytes] = []
        total = 0
        while True:
            part = stream.read(min(READ_SLICE, limit + 1 - total))
            if not part:
                break
            total += len(part)
            if total > limit:
                raise too_large(limit)
            parts.append(part)
        data = b"".join(parts)
    request._cached_data = data  # what get_data(cache=True) returns
    return data


def json_depth_exceeds(raw: bytes, limit: int) -> bool:
    """True when ``raw`` nests arrays/objects deeper than ``limit`` (no recursion: strings are
    cut out, then the remaining brackets are counted in one pass)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for byte in _JSON_STRING.sub(b'""', raw).translate(None, _NOT_BRACKETS):
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def check_json_depth(raw: bytes, limit: int) -> None:
    if raw and json_depth_exceeds(raw, limit):
        raise BadRequest(
            f"the JSON body nests deeper than {limit} levels",
            details={"max_depth": limit},
            code="json_too_deep",
        )


# --- 405 -----------------------------------------------------------------------------------------
_maps: dict[int, Map] = {}


def allowed_methods(path: str, routes: Iterable[Any]) -> list[str]:
    """The methods the routes declare for ``path`` (empty: the path is unknown)."""
    routes = list(routes)
    key = len(routes)
    url_map = _maps.get(key)
    if url_map is None:
        url_map = Map([Rule(r.path, methods=[r.method]) for r in routes])
        _maps.clear()
        _maps[key] = url_map
    try:
        url_map.bind("gateway").match(path, method="\x00")
    except MethodNotAllowed as exc:
        return sorted(exc.valid_methods or ())
    except NotFound:
        return []
    return []


# --- HTML error pages -----------------------------------------------------------------------------
PAGE_TITLES = {
    400: "请求有误",
    401: "需要登录",
    403: "无权访问",
    404: "页面不存在",
    405: "不支持的请求方式",
    413: "内容过大",
    422: "请求有误",
    429: "请求过于频繁",
    500: "出错了",
    503: "服务暂时不可用",
}
PAGE_HINTS = {
    404: "您访问的页面不存在或已下架，请检查链接是否完整。",
    405: "这个页面不支持这种请求方式。",
    429: "请稍后再试。",
    500: "我们这边出了点问题，请稍后再试。",
    503: "服务暂时不可用，请稍后再试。",
}


def is_page_path(path: str) -> bool:
    """Pages for people (``/s/…``, ``/shop/…``, ``/my/…``, ``/``): everything outside /api/."""
    return not (path == "/api" or path.startswith("/api/"))


def html_error(status: int, headers: dict | None = None) -> Response:
    """A plain Chinese error page (no details of the failure; those are in the logs)."""
    title = PAGE_TITLES.get(status, "出错了")
    hint = PAGE_HINTS.get(status, "请检查后再试。")
    e = html.escape
    body = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{e(title)} - 小铺</title>"
        "<style>body{font-family:sans-serif;margin:0;background:#fafafa;color:#333}"
        "main{max-width:28rem;margin:15vh auto;padding:1.5rem;text-align:center}"
        "h1{font-size:1.4rem}p{color:#666}</style></head>"
        f"<body><main><h1>{e(title)}</h1><p>{e(hint)}</p>"
        f'<p><small>错误 {status}</small></p><p><a href="/">返回首页</a></p></main></body></html>'
    )
    return Response(body.encode("utf-8"), status=status, mimetype="text/html", headers=headers)


class DeclaredWsgiApp(WsgiApp):
    """nameko's WSGI app, but a request no route matches (a path with a newline, ...) gets the
    gateway's own answer — the JSON envelope on /api/ paths, the HTML page elsewhere — instead
    of werkzeug's English HTML page."""

    def __call__(self, environ, start_response):  # nameko's WsgiApp.__call__, but for the except
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values
            rv = provider.handle_request(request)
        except HTTPException as exc:
            rv = self.declared(environ, exc)
        return rv(environ, start_response)

    @staticmethod
    def declared(environ: dict, exc: HTTPException) -> Response:
        status = exc.code or 500
        if is_page_path(environ.get("PATH_INFO") or "/"):
            return html_error(status)
        body = {
            "error": {
                "code": "route_not_found" if status == 404 else "bad_request",
                "message": exc.description or exc.name,
                "details": None,
            }
        }
        return Response(json.dumps(body), status=status, mimetype="application/json")
