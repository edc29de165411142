"""Read the QR code in an image with zxing-cpp (a PyPI wheel), not the ``zbarimg`` binary.

``decode_qr(poster)`` takes a path, the image's bytes or a PIL image and returns the text of the
first QR code found, or None. Tests and ``make demo`` use it as the independent decoder that
proves a poster scans: it shares no code with the ``qrcode`` package that drew the poster.
"""

from __future__ import annotations

import io
from pathlib import Path

import zxingcpp
from PIL import Image

ImageLike = str | Path | bytes | Image.Image
QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


def _image(source: ImageLike) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, bytes):
        return Image.open(io.BytesIO(source))
    return Image.open(source)


def decode_all(source: ImageLike) -> list[str]:
    """The texts of every QR code in the image, in the order zxing-cpp finds them."""
    image = _image(source)
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    found = zxingcpp.read_barcodes(image, formats=QR_ONLY)
    return [code.text for code in found if code.valid]


def decode_qr(source: ImageLike) -> str | None:
    """The text of the first QR code in the image, or None when there is none."""
    texts = decode_all(source)
    return texts[0] if texts else None
