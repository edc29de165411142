"""Uploaded images are real, bounded in bytes and pixels, and stored by content hash."""

import base64
import hashlib
import io

import pytest
from PIL import Image

from catalog.images import ImageRejected, check_upload


def png(width=8, height=8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_a_real_png_is_accepted_and_keyed_by_sha256():
    data = png()
    img = check_upload(b64(data), 100_000, 1_000_000)
    assert img.ref == hashlib.sha256(data).hexdigest()
    assert img.content_type == "image/png"
    assert (img.width, img.height) == (8, 8)


def test_a_data_url_is_accepted():
    assert check_upload("data:image/png;base64," + b64(png()), 100_000, 1_000_000)


@pytest.mark.parametrize(
    "payload, rule",
    [
        ("not base64 at all!", "image_base64"),
        (b64(b"just some text, not an image"), "image_real"),
        (b64(png()[:40]), "image_real"),
    ],
)
def test_garbage_is_rejected(payload, rule):
    with pytest.raises(ImageRejected) as exc:
        check_upload(payload, 100_000, 1_000_000)
    assert exc.value.problem["rule"] == rule


def test_an_image_over_the_byte_limit_is_rejected():
    with pytest.raises(ImageRejected) as exc:
        check_upload(b64(png(64, 64)), 50, 1_000_000)
    assert exc.value.problem["rule"] == "image_size"


def test_a_decompression_bomb_is_rejected_before_it_is_inflated():
    # 20000 x 20000 single-colour PNG compresses to a few hundred KB but would inflate to 1.2 GB
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, "PNG")
    with pytest.raises(ImageRejected) as exc:
        check_upload(b64(buf.getvalue()), 5_000_000, 25_000_000)
    assert exc.value.problem["rule"] == "image_pixels"
