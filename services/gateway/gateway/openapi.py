"""``GET /api/v1/openapi.json``, generated from the pydantic models the routes validate with."""

from __future__ import annotations

import re

from pydantic.json_schema import models_json_schema

from gateway.api import ROUTES

_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


ERROR_ENVELOPE = {
    "description": "error envelope",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
ERROR_PAGE = {
    "description": "an HTML error page (Chinese) — e.g. 404 for a missing or withdrawn share",
    "content": {"text/html": {"schema": {"type": "string"}}},
}


def _query_schema(prop: dict) -> dict:
    """A query parameter's schema from the query model's field, ``null`` left out (an absent or
    empty parameter is the default)."""
    if "anyOf" in prop:
        options = [o for o in prop["anyOf"] if o.get("type") != "null"]
        prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **options[0]} if options else {}
    schema = {k: v for k, v in prop.items() if k not in ("title", "default", "description")}
    return schema or {"type": "string"}


def openapi_document(version: str = "1.0.0", config: dict | None = None) -> dict:
    """``config``: leave out the routes that do not exist under it (``RouteSpec.when``)."""
    routes = [s for s in ROUTES if config is None or s.exists(config)]
    models = set()
    for spec in routes:
        for model in (spec.body, spec.query, spec.response):
            if isinstance(model, type):
                models.add(model)
    ordered = sorted(models, key=lambda m: m.__name__)
    schemas: dict = {}
    refs: dict = {}
    if ordered:
        keyed, top = models_json_schema(
            [(m, "validation") for m in ordered], ref_template="#/components/schemas/{model}"
        )
        schemas = top.get("$defs", {})
        refs = {m: s for (m, _), s in keyed.items()}
    paths: dict = {}
    for spec in routes:
        path = _PARAM.sub(lambda m: "{" + m.group(2) + "}", spec.path)
        op: dict = {
            "operationId": spec.fn_name,
            "summary": spec.summary.splitlines()[0] if spec.summary else spec.fn_name,
            "tags": spec.tags or ["platform"],
        }
        params = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "integer" if conv == "int" else "string"},
            }
            for conv, name in _PARAM.findall(spec.path)
        ]
        if spec.query is not None:
            props = spec.query.model_json_schema(by_alias=True).get("properties", {})
            for name, fld in spec.query.model_fields.items():
                params.append(
                    {
                        "name": fld.alias or name,
                        "in": "query",
                        "required": fld.is_required(),
                        "schema": _query_schema(props.get(fld.alias or name, {})),
                    }
                )
        if spec.idempotent:
            params.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                }
            )
        if params:
            op["parameters"] = params
        if spec.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[spec.body]}},
            }
        ok: dict = {"description": "success"}
        if spec.response is not None and spec.response in refs:
            ok["content"] = {spec.produces: {"schema": refs[spec.response]}}
        elif spec.produces != "application/json":
            ok["content"] = {spec.produces: {}}
        op["responses"] = {str(spec.status): ok, "default": ERROR_ENVELOPE}
        # a page (and every path outside /api/, e.g. a chart or a stylesheet): its errors are HTML
        # pages too (gateway.limits)
        if spec.produces == "text/html" or not spec.path.startswith("/api/"):
            op["responses"].update({"404": ERROR_PAGE, "default": ERROR_PAGE})
        if spec.limit:  # gateway.ratelimit: per address and global
            op["responses"]["429"] = {
                "description": f"rate limited ({spec.limit}): retry after Retry-After seconds",
                "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        if spec.auth:
            op["security"] = [{"bearer": []}]
            op["description"] = f"roles: {', '.join(spec.auth)}"
        paths.setdefault(path, {})[spec.method.lower()] = op
    schemas["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {},
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Xiaopu gateway", "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
