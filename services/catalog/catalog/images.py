"""Uploaded product images: checked with Pillow before anything stores them.

An upload must be base64 of a real PNG/JPEG/GIF/WebP image, no larger than ``image_max_bytes``
and no more than ``image_max_pixels`` pixels. The pixel count is read from the header BEFORE
decoding, so a decompression bomb (a tiny file that inflates to gigapixels) is refused without
ever being inflated; Pillow's own bomb guard is turned into an error as a second net. Images are
stored under their content hash (sha256), so the same picture uploaded twice is stored once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from shared.errors import rule

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
REF_PATTERN = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class CheckedImage:
    ref: str
    content_type: str
    data: bytes
    width: int
    height: int


class ImageRejected(Exception):
    def __init__(self, problem: dict):
        super().__init__(problem["message"])
        self.problem = problem


def check_upload(image_base64: str, max_bytes: int, max_pixels: int) -> CheckedImage:
    """The validated image, or ImageRejected naming the rule it breaks."""
    text = image_base64.strip()
    if text.startswith("data:"):  # accept a data: URL as pasted from a browser
        text = text.partition(",")[2]
    if len(text) > (max_bytes * 4) // 3 + 8:
        raise ImageRejected(
            rule("image_size", f"the image is larger than {max_bytes} bytes", max_bytes=max_bytes)
        )
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageRejected(rule("image_base64", "image_base64 is not valid base64")) from exc
    if not data:
        raise ImageRejected(rule("image_real", "the image is empty"))
    if len(data) > max_bytes:
        raise ImageRejected(
            rule("image_size", f"the image is larger than {max_bytes} bytes", max_bytes=max_bytes)
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageRejected(
                        rule(
                            "image_pixels",
                            f"the image has {width}x{height} pixels; at most "
                            f"{max_pixels} pixels are accepted (decompression bombs are refused)",
                            max_pixels=max_pixels,
                        )
                    )
                if fmt not in FORMATS:
                    raise ImageRejected(
                        rule(
                            "image_format",
                            f"image format {fmt} is not accepted; use "
                            + ", ".join(sorted(FORMATS)),
                        )
                    )
                img.verify()
            with Image.open(io.BytesIO(data)) as img:
                img.load()  # a truncated or corrupt body fails here
        except ImageRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected(
                rule("image_pixels", "the image is a decompression bomb", max_pixels=max_pixels)
            ) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageRejected(rule("image_real", "image_base64 is not a readable image")) from exc
    return CheckedImage(hashlib.sha256(data).hexdigest(), FORMATS[fmt], data, width, height)


def valid_ref(ref: str) -> bool:
    return bool(REF_PATTERN.match(ref or ""))
