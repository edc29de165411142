"""Poster rendering (Pillow): two styles, portrait 750×1334, JPEG.

``PosterRenderer.render(style, drawn, photo)`` draws everything in ``drawn`` (title, price_fen,
shop_name, reason, url) over the product ``photo`` (a PIL image, or None for a generated
placeholder). Pieces that never change for the same input are cached in memory: fonts, the QR
code of a URL, the fitted photo of an image digest, the card background. Whole posters are cached
by the caller, keyed by ``domain.poster_key`` (a hash of everything drawn).

The CJK font comes from ``SHARE_FONT_PATH``, else the font that travels with the project
(``share/fonts/wqy-microhei.ttc``, WenQuanYi Micro Hei, Apache-2.0: see ``share/fonts/README.md``),
else the machine's own (``fc-match :lang=zh-cn``, then known paths). ``find_cjk_font`` proves the
font really has CJK glyphs (a font without them would draw tofu boxes); when none does, the
service logs an error at start-up, refuses to render posters, and ``font_status`` says
"degraded: <why>" for the health answer: a poster problem degrades posters, not the platform.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import qrcode
from PIL import Image, ImageDraw, ImageFont, ImageOps
from qrcode.constants import ERROR_CORRECT_M

from share.domain import POSTER_SIZE, wrap_text, yuan
from shared.lru import LRU

log = logging.getLogger(__name__)

BUNDLED_FONTS = (str(Path(__file__).resolve().parent / "fonts" / "wqy-microhei.ttc"),)
KNOWN_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)
JPEG_QUALITY = 85
CONTENT_TYPE = "image/jpeg"


class FontMissing(RuntimeError):
    pass


def has_cjk_glyphs(path: str) -> bool:
    """True when the font draws 中 and 铺 as real glyphs (different from each other and from
    the missing-glyph box of a private-use code point)."""
    try:
        font = ImageFont.truetype(path, 32)
    except Exception:
        return False
    masks = [bytes(font.getmask(ch)) for ch in ("中", "铺", "\ue0ff")]
    return bool(masks[0]) and masks[0] != masks[2] and masks[1] != masks[2] and masks[0] != masks[1]


def find_cjk_font(
    configured: str | None = None,
    *,
    bundled: Sequence[str] = BUNDLED_FONTS,
    system: bool = True,
) -> tuple[str | None, str]:
    """(path, how it was found) or (None, why not).

    ``configured`` (``SHARE_FONT_PATH``) wins and is never silently replaced; then the fonts in
    ``bundled`` (the one that travels with the project); then, when ``system``, the machine's
    (fc-match, then ``KNOWN_FONTS``). Tests pass other ``bundled``/``system`` values to prove
    each step alone."""
    if configured:
        if os.path.exists(configured) and has_cjk_glyphs(configured):
            return configured, "SHARE_FONT_PATH"
        return None, f"SHARE_FONT_PATH={configured!r} is missing or has no CJK glyphs"
    candidates = [(p, "bundled with the project") for p in bundled]
    if system:
        candidates += _system_fonts()
    for path, how in candidates:
        if os.path.exists(path) and has_cjk_glyphs(path):
            return path, how
    return None, (
        "no CJK font found: the font bundled in share/fonts/ is missing and the machine has "
        "none (set SHARE_FONT_PATH); posters are refused rather than drawn as tofu"
    )


def _system_fonts() -> list[tuple[str, str]]:
    candidates: list[tuple[str, str]] = []
    if shutil.which("fc-match"):
        try:
            out = subprocess.run(
                ["fc-match", "-f", "%{file}", ":lang=zh-cn"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            if out:
                candidates.append((out, "fc-match"))
        except Exception:  # fontconfig trouble: fall back to the known paths
            pass
    return candidates + [(p, "known path") for p in KNOWN_FONTS]


def font_status(font_path: str | None, note: str) -> str:
    """The poster part of the share service's health: "ok", or "degraded: <why>". Only posters
    depend on the font, so this never makes the service (or the platform) unhealthy."""
    return "ok" if font_path else f"degraded: {note}"


def decode_photo(data: bytes) -> Image.Image:
    img: Image.Image = Image.open(io.BytesIO(data))
    img.draft("RGB", (1500, 1500))  # JPEG: decode at a reduced scale when much larger
    img = ImageOps.exif_transpose(img)
    if img.mode != "RGB":
        img = img.convert("RGB")
    if min(img.size) > 1000:  # posters need at most 750 px: shrink once, fast, when decoded
        img.thumbnail(
            (1000 * img.size[0] // min(img.size), 1000 * img.size[1] // min(img.size)),
            Image.Resampling.BICUBIC,
            reducing_gap=2.0,
        )
    return img


class PosterRenderer:
    def __init__(self, font_path: str | None, cache_items: int = 256):
        self.font_path = font_path
        self._qr: LRU[tuple, Image.Image] = LRU(cache_items)
        self._fitted: LRU[tuple, Image.Image] = LRU(cache_items)
        self._backgrounds: dict[str, Image.Image] = {}
        self._widths: dict[int, dict[str, float]] = {}
        self._fonts: dict[int, ImageFont.FreeTypeFont] = {}

    # -- cached pieces ----------------------------------------------------------------------
    def font(self, size: int) -> ImageFont.FreeTypeFont:
        font = self._fonts.get(size)
        if font is None:
            if not self.font_path:
                raise FontMissing("no CJK font available")
            # BASIC layout: no shaping engine needed for Chinese, and much cheaper per call
            font = ImageFont.truetype(self.font_path, size, layout_engine=ImageFont.Layout.BASIC)
            self._fonts[size] = font  # a handful of sizes: one per text role of the two styles
        return font

    def measure(self, size: int):
        """A width function for ``wrap_text``: the sum of cached per-character advances
        (BASIC layout draws exactly these advances, so lines never overflow)."""
        widths = self._widths.setdefault(size, {})
        font = self.font(size)

        def width(text: str) -> float:
            total = 0.0
            for ch in text:
                w = widths.get(ch)
                if w is None:
                    w = widths[ch] = font.getlength(ch)
                total += w
            return total

        return width

    @staticmethod
    def _remember(cache: LRU, key, value):
        cache.put(key, value)
        return value

    def qr(self, url: str, size: int) -> Image.Image:
        key = (url, size)
        hit = self._qr.get(key)
        if hit is not None:
            return hit
        # a fixed mask skips scoring all 8 masks (pure Python, the slow part); any mask scans
        code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=1, border=2, mask_pattern=2)
        code.add_data(url)
        code.make(fit=True)
        img = code.make_image(fill_color="black", back_color="white").get_image().convert("L")
        modules = img.size[0]
        scale = max(1, size // modules)
        img = img.resize((modules * scale, modules * scale), Image.Resampling.NEAREST)
        return self._remember(self._qr, key, img.convert("RGB"))

    def fitted(
        self, photo_key: str, photo: Image.Image | None, size: tuple[int, int], title: str
    ) -> Image.Image:
        key = (photo_key, size)
        hit = self._fitted.get(key)
        if hit is not None:
            return hit
        if photo is None:
            img = self.placeholder(size, title)
        else:
            img = ImageOps.fit(photo, size, method=Image.Resampling.BILINEAR)
        return self._remember(self._fitted, key, img)

    def placeholder(self, size: tuple[int, int], title: str) -> Image.Image:
        """A soft gradient with the title's first character: no product photo to show (or only
        an external URL, which we never fetch)."""
        w, h = size
        top, bottom = (255, 236, 224), (250, 200, 180)
        grad = Image.linear_gradient("L").resize((w, h))
        img = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), grad)
        draw = ImageDraw.Draw(img)
        glyph = (title.strip() or "铺")[0]
        font = self.font(int(min(w, h) * 0.45))
        draw.text((w / 2, h / 2 - 30), glyph, font=font, fill=(232, 93, 60), anchor="mm")
        draw.text(
            (w / 2, h * 0.8), "暂无商品图", font=self.font(36), fill=(150, 110, 100), anchor="mm"
        )
        return img

    def background(self, style: str) -> Image.Image:
        bg = self._backgrounds.get(style)
        if bg is None:
            w, h = POSTER_SIZE
            if style == "card":
                grad = Image.linear_gradient("L").resize((w, h))
                bg = Image.composite(
                    Image.new("RGB", (w, h), (255, 120, 80)),
                    Image.new("RGB", (w, h), (255, 70, 60)),
                    grad,
                )
                ImageDraw.Draw(bg).rounded_rectangle(
                    (30, 30, w - 30, h - 30), radius=36, fill=(255, 255, 255)
                )
            else:
                bg = Image.new("RGB", (w, h), (255, 255, 255))
            self._backgrounds[style] = bg
        return bg

    # -- text helpers -----------------------------------------------------------------------
    def _text_block(self, draw, xy, text, size, width, max_lines, fill, spacing=1.3):
        font = self.font(size)
        lines = wrap_text(text, self.measure(size), width, max_lines)
        x, y = xy
        for line in lines:
            draw.text((x, y), line, font=font, fill=fill)
            y += int(size * spacing)
        return y

    # -- styles -----------------------------------------------------------------------------
    def render(self, style: str, drawn: dict, photo: Image.Image | None, photo_key: str) -> bytes:
        if not self.font_path:
            raise FontMissing("no CJK font available")
        canvas = self.background(style).copy()
        if style == "card":
            self._card(canvas, drawn, photo, photo_key)
        else:
            self._classic(canvas, drawn, photo, photo_key)
        out = io.BytesIO()
        canvas.save(out, "JPEG", quality=JPEG_QUALITY)
        return out.getvalue()

    def _classic(self, canvas, d, photo, photo_key):
        w, h = POSTER_SIZE
        draw = ImageDraw.Draw(canvas)
        canvas.paste(self.fitted(photo_key, photo, (w, 750), d["title"]), (0, 0))
        y = self._text_block(draw, (40, 790), d["title"], 40, w - 80, 2, (34, 34, 34))
        price_font = self.font(64)
        draw.text((40, y + 14), yuan(d["price_fen"]), font=price_font, fill=(230, 40, 40))
        y += 110
        draw.line((40, y, w - 40, y), fill=(238, 238, 238), width=2)
        qr = self.qr(d["url"], 220)
        qx, qy = w - 40 - qr.size[0], h - 60 - qr.size[1]
        canvas.paste(qr, (qx, qy))
        draw.text(
            (qx + qr.size[0] / 2, qy + qr.size[1] + 28),
            "长按识别二维码",
            font=self.font(22),
            fill=(120, 120, 120),
            anchor="mm",
        )
        text_w = qx - 40 - 30
        yy = self._text_block(draw, (40, y + 30), d["shop_name"], 30, text_w, 1, (60, 60, 60))
        if d.get("reason"):
            self._text_block(
                draw, (40, yy + 12), "“" + d["reason"] + "”", 28, text_w, 5, (110, 110, 110)
            )

    def _card(self, canvas, d, photo, photo_key):
        w, h = POSTER_SIZE
        draw = ImageDraw.Draw(canvas)
        draw.text((70, 62), d["shop_name"], font=self.font(32), fill=(40, 40, 40))
        draw.text((70, 110), "掌柜推荐", font=self.font(24), fill=(255, 90, 60))
        canvas.paste(self.fitted(photo_key, photo, (610, 610), d["title"]), (70, 160))
        tag_font = self.font(52)
        price = yuan(d["price_fen"])
        tag_w = int(self.measure(52)(price)) + 48
        draw.rounded_rectangle((70, 730, 70 + tag_w, 800), radius=35, fill=(255, 70, 60))
        draw.text((70 + 24, 765), price, font=tag_font, fill=(255, 255, 255), anchor="lm")
        y = self._text_block(draw, (70, 830), d["title"], 36, w - 140, 2, (30, 30, 30))
        if d.get("reason"):
            box_top = y + 16
            draw.rounded_rectangle(
                (70, box_top, w - 70, box_top + 150), radius=18, fill=(255, 244, 238)
            )
            self._text_block(draw, (94, box_top + 20), d["reason"], 26, w - 188, 3, (150, 80, 60))
        qr = self.qr(d["url"], 200)
        qy = h - 80 - qr.size[1]
        canvas.paste(qr, (70, qy))
        tx = 70 + qr.size[0] + 30
        draw.text((tx, qy + 50), "扫码或长按识别", font=self.font(30), fill=(40, 40, 40))
        draw.text((tx, qy + 100), "打开小铺查看商品", font=self.font(26), fill=(120, 120, 120))
