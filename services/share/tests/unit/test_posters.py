"""Poster rendering: the font check, the size, the fitted photo and the QR code."""

import io
import os
import subprocess

import pytest
from PIL import Image

from share.domain import POSTER_SIZE
from share.posters import FontMissing, PosterRenderer, decode_photo, find_cjk_font, has_cjk_glyphs

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # fonts-dejavu-core, by .ci/run
DRAWN = {
    "title": "云南高山有机红茶，特级滇红古树茶叶礼盒装（500克）" * 2,
    "price_fen": 3990,
    "shop_name": "阿花小铺",
    "reason": "我自己喝了三年，回甘很好！",
    "url": "http://127.0.0.1:8000/s/7KX9M2PQ4RTW",
}


def test_a_cjk_font_is_found_on_this_machine():
    path, how = find_cjk_font()
    assert path and has_cjk_glyphs(path), how


def test_a_font_without_chinese_glyphs_is_refused_rather_than_drawing_tofu():
    assert os.path.exists(DEJAVU), "install fonts-dejavu-core (a font without CJK glyphs)"
    assert not has_cjk_glyphs(DEJAVU)
    path, why = find_cjk_font(DEJAVU)
    assert path is None and "no CJK glyphs" in why


def test_a_missing_configured_font_is_reported():
    path, why = find_cjk_font("/nonexistent/font.ttc")
    assert path is None and "SHARE_FONT_PATH" in why
    with pytest.raises(FontMissing):
        PosterRenderer(None).render("classic", DRAWN, None, "placeholder")


@pytest.mark.parametrize("style", ["classic", "card"])
def test_a_poster_is_portrait_750_by_1334_and_its_qr_code_scans(style, tmp_path):
    renderer = PosterRenderer(find_cjk_font()[0])
    photo = Image.linear_gradient("L").resize((1600, 900)).convert("RGB")  # landscape photo
    data = renderer.render(style, DRAWN, photo, "gradient")
    img = Image.open(io.BytesIO(data))
    assert img.size == POSTER_SIZE and img.format == "JPEG"
    path = tmp_path / "poster.jpg"
    path.write_bytes(data)
    out = subprocess.run(
        ["zbarimg", "--quiet", "--raw", str(path)], capture_output=True, text=True, timeout=30
    )
    assert out.stdout.strip() == DRAWN["url"]


def test_the_photo_is_cropped_not_distorted():
    renderer = PosterRenderer(find_cjk_font()[0])
    wide = Image.new("RGB", (2000, 1000), (255, 0, 0))
    wide.paste((0, 0, 255), (0, 0, 500, 1000))  # blue left quarter is cropped away
    fitted = renderer.fitted("wide", wide, (750, 750), "x")
    assert fitted.size == (750, 750)
    assert fitted.getpixel((5, 375)) == (255, 0, 0)


def test_large_photos_are_shrunk_once_when_decoded():
    out = io.BytesIO()
    Image.new("RGB", (4000, 3000), (10, 20, 30)).save(out, "JPEG")
    photo = decode_photo(out.getvalue())
    assert min(photo.size) <= 1000 and photo.size[0] > photo.size[1]
