"""gateway.limits: bodies are read within their limit, JSON depth is counted without recursion."""

import io

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gateway.limits import (
    Limits,
    PayloadTooLarge,
    allowed_methods,
    check_json_depth,
    json_depth_exceeds,
    read_body,
)
from shared.errors import BadRequest


class CountingInput(io.RawIOBase):
    """An endless request body that counts what the server read of it."""

    def __init__(self):
        self.read_bytes = 0

    def readable(self):
        return True

    def read(self, size=-1):
        size = 1 << 20 if size is None or size < 0 else size
        self.read_bytes += size
        return b" " * size


def chunked_request(stream) -> Request:
    environ = EnvironBuilder(method="POST", path="/api/v1/suppliers").get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input"] = stream
    return Request(environ)


def test_a_chunked_body_is_read_no_further_than_the_limit():
    stream = CountingInput()
    with pytest.raises(PayloadTooLarge) as refused:
        read_body(chunked_request(stream), 1024 * 1024)
    assert refused.value.status == 413
    assert stream.read_bytes <= 1024 * 1024 + 1


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    stream = CountingInput()
    environ = EnvironBuilder(method="POST", path="/x").get_environ()
    environ["CONTENT_LENGTH"] = str(300 * 1024 * 1024)
    environ["wsgi.input"] = stream
    with pytest.raises(PayloadTooLarge):
        read_body(Request(environ), 1024 * 1024)
    assert stream.read_bytes == 0


def test_the_body_read_is_what_get_data_returns():
    request = Request(EnvironBuilder(method="POST", path="/x", data=b'{"a": 1}').get_environ())
    assert read_body(request, 100) == b'{"a": 1}'
    assert request.get_data(cache=True) == b'{"a": 1}'


def test_upload_routes_have_their_own_limit():
    limits = Limits.from_config({"XIAOPU_MAX_BODY_BYTES": "1000", "XIAOPU_MAX_UPLOAD_BYTES": 5000})
    assert limits.body_limit("POST", "/api/v1/products") == 5000
    assert limits.body_limit("PATCH", "/api/v1/products/12") == 5000
    assert limits.body_limit("POST", "/api/v1/suppliers") == 1000
    assert Limits.from_config({}).max_json_depth == 32


def test_json_depth_is_counted_without_recursion():
    assert json_depth_exceeds(b"[" * 1_000_000 + b"]" * 1_000_000, 32)
    assert not json_depth_exceeds(b"[" * 32 + b"]" * 32, 32)
    assert json_depth_exceeds(b"[" * 33 + b"]" * 33, 32)
    assert not json_depth_exceeds(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', 32)
    assert not json_depth_exceeds(b'[[["\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]]]', 5)
    with pytest.raises(BadRequest) as refused:
        check_json_depth(b'{"a":' * 40 + b"1" + b"}" * 40, 32)
    assert refused.value.code == "json_too_deep"


def test_allowed_methods_of_a_known_path():
    class R:
        def __init__(self, method, path):
            self.method, self.path = method, path

    routes = [R("GET", "/api/v1/products"), R("POST", "/api/v1/products")]
    assert allowed_methods("/api/v1/products", routes) == ["GET", "HEAD", "POST"]
    assert allowed_methods("/api/v1/other", routes) == []
