"""Poster rendering: the font check, the size, the fitted photo and the QR code."""

import io

import pytest
from PIL import Image, ImageFont

from share.domain import POSTER_SIZE
from share.posters import (
    BUNDLED_FONTS,
    FontMissing,
    PosterRenderer,
    decode_photo,
    find_cjk_font,
    font_status,
    has_cjk_glyphs,
)
from shared.qr import decode_qr

DRAWN = {
    "title": "云南高山有机红茶，特级滇红古树茶叶礼盒装（500克）" * 2,
    "price_fen": 3990,
    "shop_name": "阿花小铺",
    "reason": "我自己喝了三年，回甘很好！",
    "url": "http://127.0.0.1:8000/s/7KX9M2PQ4RTW",
}


@pytest.fixture
def latin_only_font(tmp_path):
    """Pillow's own Aileron Regular: a real TrueType font without a single Chinese glyph."""
    path = tmp_path / "aileron.ttf"
    path.write_bytes(ImageFont.load_default(size=32).font_bytes)
    return str(path)


def test_the_font_that_travels_with_the_project_is_found_first():
    path, how = find_cjk_font()
    assert (path, how) == (BUNDLED_FONTS[0], "bundled with the project")
    assert has_cjk_glyphs(path)


def test_the_bundled_font_alone_is_enough_without_any_system_font():
    path, how = find_cjk_font(system=False)
    assert path == BUNDLED_FONTS[0] and how == "bundled with the project"


def test_the_bundled_font_draws_every_character_a_poster_draws():
    font = ImageFont.truetype(BUNDLED_FONTS[0], 32)
    tofu = bytes(font.getmask("\ue0ff"))
    fixed = "长按识别二维码扫码或长按识别打开小铺查看商品掌柜推荐暂无商品图¥“”，。！（）"
    fixed += "掌柜精选·实物以详情为准口令店铺号"
    drawn = DRAWN["title"] + DRAWN["shop_name"] + DRAWN["reason"] + fixed + "榉滇铺麤龘"
    missing = {ch for ch in drawn if not ch.isspace() and bytes(font.getmask(ch)) == tofu}
    assert not missing


def test_a_font_without_chinese_glyphs_is_refused_rather_than_drawing_tofu(latin_only_font):
    assert not has_cjk_glyphs(latin_only_font)
    path, why = find_cjk_font(latin_only_font)
    assert path is None and "no CJK glyphs" in why


def test_a_configured_font_is_never_silently_replaced_by_the_bundled_one(latin_only_font):
    path, _ = find_cjk_font(latin_only_font, bundled=BUNDLED_FONTS)
    assert path is None


def test_a_missing_configured_font_is_reported():
    path, why = find_cjk_font("/nonexistent/font.ttc")
    assert path is None and "SHARE_FONT_PATH" in why
    with pytest.raises(FontMissing):
        PosterRenderer(None).render("classic", DRAWN, None, "placeholder")


def test_no_font_anywhere_degrades_posters_with_the_reason(latin_only_font):
    path, why = find_cjk_font(bundled=(latin_only_font,), system=False)
    assert path is None and "SHARE_FONT_PATH" in why
    assert font_status(path, why) == f"degraded: {why}"
    assert font_status(BUNDLED_FONTS[0], "bundled with the project") == "ok"


@pytest.mark.parametrize("style", ["classic", "card"])
def test_a_poster_is_portrait_750_by_1334_and_its_qr_code_scans(style):
    renderer = PosterRenderer(find_cjk_font()[0])
    photo = Image.linear_gradient("L").resize((1600, 900)).convert("RGB")  # landscape photo
    data = renderer.render(style, DRAWN, photo, "gradient")
    img = Image.open(io.BytesIO(data))
    assert img.size == POSTER_SIZE and img.format == "JPEG"
    assert decode_qr(data) == DRAWN["url"]  # zxing-cpp: independent of the qrcode encoder


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
