"""End-to-end: every service as its own process (as ``make run`` starts them), on a fresh
RabbitMQ vhost and fresh PostgreSQL databases, spoken to only over HTTP."""

from __future__ import annotations

import pytest
import requests

from benchmarks.common import platform_on_postgres


class Api:
    """A tiny HTTP client for the tests: ``api.post(path, json, token=...)``."""

    def __init__(self, ctx):
        self.url = ctx.url
        self.ctx = ctx
        self.admin = ctx.admin_headers["Authorization"].split(" ", 1)[1]
        self.session = requests.Session()

    def call(self, method: str, path: str, token: str | None = None, **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.session.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, **kw):
        return self.call("POST", path, **kw)

    def put(self, path, **kw):
        return self.call("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    logs = tmp_path_factory.mktemp("platform-logs")
    with platform_on_postgres(log_dir=logs) as ctx:
        ctx.log_dir = logs
        yield ctx


@pytest.fixture(scope="session")
def api(platform):
    return Api(platform)
