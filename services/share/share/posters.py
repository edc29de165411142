"""Poster rendering (Pillow): two styles, portrait 750×1334, JPEG.

``PosterRenderer.render(style, drawn, photo)`` draws everything in ``drawn`` (title, price_fen,
shop_name, reason, url, shop_number, code) with the product ``photo`` (a PIL image, or None for a
designed placeholder), each piece in the box ``domain.card_layout`` / ``domain.classic_layout``
gives it (the boxes never overlap: the photo gives way to long titles and reasons). Pieces that
never change for the same input are cached in memory: fonts, the QR code of a URL, the fitted
photo of an image digest, the card background. Whole posters are cached by the caller, keyed by
``domain.poster_key`` (a hash of everything drawn).

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

from share import domain
from share.domain import POSTER_SIZE, Box, wrap_text, yuan
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

    def placeholder(self, size: tuple[int, int], title: str = "") -> Image.Image:
        """No product photo (or only an external URL, which we never fetch): a soft warm
        gradient with a drawn shopping-bag mark and a small "掌柜精选" line — a designed panel,
        not a giant character."""
        w, h = size
        top, bottom = (255, 244, 236), (255, 222, 206)
        grad = Image.linear_gradient("L").resize((w, h))
        img = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), grad)
        draw = ImageDraw.Draw(img)
        # faint diagonal pattern
        for x in range(-h, w, 48):
            draw.line((x, h, x + h, 0), fill=(255, 234, 222), width=10)
        unit = max(24, min(w, h) // 7)
        cx, cy = w // 2, h // 2 - unit // 2
        accent, soft = (240, 110, 80), (255, 255, 255)
        # a little shop front (小铺): a scalloped awning over a counter and a door
        left, right = cx - unit * 3 // 2, cx + unit * 3 // 2
        awning_top, awning_bottom = cy - unit, cy - unit // 3
        draw.rectangle((left, awning_top, right, awning_bottom), fill=accent)
        step = (right - left) // 5
        for i in range(5):
            x0 = left + i * step
            fill = accent if i % 2 == 0 else (255, 160, 130)
            draw.rectangle((x0, awning_top, x0 + step, awning_bottom), fill=fill)
            draw.pieslice(
                (x0, awning_bottom - step // 2, x0 + step, awning_bottom + step // 2),
                0,
                180,
                fill=fill,
            )
        body = (left + unit // 6, awning_bottom + step // 2, right - unit // 6, cy + unit)
        draw.rectangle(body, fill=soft, outline=accent, width=5)
        door = (cx - unit // 3, cy + unit // 4, cx + unit // 3, body[3])
        draw.rectangle(door, fill=(255, 222, 206), outline=accent, width=4)
        bag = body
        draw.text(
            (cx, bag[3] + 20 + unit // 3),
            "掌柜精选 · 实物以详情为准",
            font=self.font(max(20, unit // 3)),
            fill=(190, 120, 100),
            anchor="mm",
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
    def _lines(self, text: str, size: int, width: int, max_lines: int) -> list[str]:
        return wrap_text(text, self.measure(size), width, max_lines) if text else []

    def _draw_lines(self, draw, box: Box, lines: list[str], size: int, line_h: int, fill) -> None:
        font = self.font(size)
        x, y = box[0], box[1]
        for line in lines:
            draw.text((x, y + (line_h - size) // 2), line, font=font, fill=fill)
            y += line_h

    @staticmethod
    def _ids(d: dict) -> tuple[str, str]:
        code = d.get("code") or ""
        number = d.get("shop_number") or ""
        return (f"口令 {code}" if code else "", f"店铺号 {number}" if number else "")

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

    def _photo(self, canvas, box: Box, photo, photo_key: str) -> None:
        size = (box[2] - box[0], box[3] - box[1])
        canvas.paste(self.fitted(photo_key, photo, size, ""), (box[0], box[1]))

    def _qr_in(self, canvas, box: Box, url: str) -> None:
        side = min(box[2] - box[0], box[3] - box[1])
        qr = self.qr(url, side)
        # centred in its box (the QR is a whole number of modules, at most ``side``)
        x = box[0] + (box[2] - box[0] - qr.size[0]) // 2
        y = box[1] + (box[3] - box[1] - qr.size[1]) // 2
        canvas.paste(qr, (x, y))

    def _classic(self, canvas, d, photo, photo_key):
        w, _ = POSTER_SIZE
        draw = ImageDraw.Draw(canvas)
        title = self._lines(d["title"], domain.CLASSIC_TITLE_SIZE, w - 80, domain.TITLE_MAX_LINES)
        probe = domain.classic_layout(len(title), 0, photo is not None)
        reason_w = probe["shop_name"][2] - probe["shop_name"][0]
        reason = self._lines(
            "“" + d["reason"] + "”" if d.get("reason") else "",
            domain.CLASSIC_REASON_SIZE,
            reason_w,
            domain.CLASSIC_REASON_MAX_LINES,
        )
        box = domain.classic_layout(len(title), len(reason), photo is not None)
        self._photo(canvas, box["photo"], photo, photo_key)
        self._draw_lines(
            draw,
            box["title"],
            title,
            domain.CLASSIC_TITLE_SIZE,
            domain.CLASSIC_TITLE_LINE,
            (34, 34, 34),
        )
        px, py, _, py1 = box["price"]
        draw.text(
            (px, (py + py1) // 2),
            yuan(d["price_fen"]),
            font=self.font(64),
            fill=(230, 40, 40),
            anchor="lm",
        )
        draw.rectangle(box["rule"], fill=(238, 238, 238))
        sx, sy, sx1, _ = box["shop_name"]
        name = self._lines(d["shop_name"], 30, sx1 - sx, 1)
        self._draw_lines(draw, box["shop_name"], name, 30, 40, (60, 60, 60))
        if reason:
            self._draw_lines(
                draw,
                box["reason"],
                reason,
                domain.CLASSIC_REASON_SIZE,
                domain.CLASSIC_REASON_LINE,
                (110, 110, 110),
            )
        code_line, number_line = self._ids(d)
        self._draw_lines(draw, box["ids"], [code_line, number_line], 24, 36, (232, 93, 60))
        self._qr_in(canvas, box["qr"], d["url"])
        cx0, cy0, cx1, cy1 = box["qr_caption"]
        draw.text(
            ((cx0 + cx1) / 2, (cy0 + cy1) / 2),
            "长按识别二维码",
            font=self.font(22),
            fill=(120, 120, 120),
            anchor="mm",
        )

    def _card(self, canvas, d, photo, photo_key):
        w, _ = POSTER_SIZE
        draw = ImageDraw.Draw(canvas)
        text_w = w - 140
        title = self._lines(d["title"], domain.CARD_TITLE_SIZE, text_w, domain.TITLE_MAX_LINES)
        reason = self._lines(
            d.get("reason") or "",
            domain.CARD_REASON_SIZE,
            text_w - 48,
            domain.CARD_REASON_MAX_LINES,
        )
        box = domain.card_layout(len(title), len(reason), photo is not None)
        name = self._lines(d["shop_name"], 32, text_w, 1)
        self._draw_lines(draw, box["shop_name"], name, 32, 44, (40, 40, 40))
        number = d.get("shop_number")
        subtitle = "掌柜推荐" + (f" · 店铺号 {number}" if number else "")
        self._draw_lines(draw, box["subtitle"], [subtitle], 24, 34, (255, 90, 60))
        self._photo(canvas, box["photo"], photo, photo_key)
        px, py, _, py1 = box["price"]
        price = yuan(d["price_fen"])
        tag_w = int(self.measure(52)(price)) + 48
        draw.rounded_rectangle((px, py, px + tag_w, py1), radius=35, fill=(255, 70, 60))
        draw.text(
            (px + 24, (py + py1) // 2),
            price,
            font=self.font(52),
            fill=(255, 255, 255),
            anchor="lm",
        )
        self._draw_lines(
            draw,
            box["title"],
            title,
            domain.CARD_TITLE_SIZE,
            domain.CARD_TITLE_LINE,
            (30, 30, 30),
        )
        if reason:
            rx0, ry0, rx1, ry1 = box["reason"]
            draw.rounded_rectangle(box["reason"], radius=18, fill=(255, 244, 238))
            self._draw_lines(
                draw,
                (rx0 + 24, ry0 + 20, rx1 - 24, ry1 - 20),
                reason,
                domain.CARD_REASON_SIZE,
                domain.CARD_REASON_LINE,
                (150, 80, 60),
            )
        qx0, qy0, qx1, _ = box["qr"]
        for x in range(qx0, w - 70, 16):  # a dashed rule above the QR panel
            draw.line((x, qy0 - 14, x + 8, qy0 - 14), fill=(230, 220, 215), width=2)
        self._qr_in(canvas, box["qr"], d["url"])
        code_line, number_line = self._ids(d)
        lines = ["扫码或长按识别", "打开小铺查看商品", code_line, number_line]
        tx, ty, _, _ = box["qr_text"]
        fonts = [(30, (40, 40, 40)), (24, (120, 120, 120)), (26, (232, 93, 60)), (24, (90, 90, 90))]
        for i, (line, (size, fill)) in enumerate(zip(lines, fonts, strict=True)):
            if line:
                draw.text((tx, ty + 8 + i * 44), line, font=self.font(size), fill=fill)
