"""Poster layout (issue 17): for every combination of title length, reason length and missing
photo, no two boxes of either style overlap and every box lies inside the canvas; every poster
of the grid still decodes (zxing-cpp) to the landing URL marked ``?src=qr`` and carries the
shop number and the share code."""

import io
import itertools

import pytest
from PIL import Image

from share import domain
from share.posters import PosterRenderer, find_cjk_font
from shared.qr import decode_qr

pytestmark = pytest.mark.unit

TITLES = {
    "one_line": "滇红茶 250g",
    "two_lines": "云南高山有机红茶，特级滇红古树茶叶礼盒装（500克）",
    "many_lines": "云南高山有机红茶，特级滇红古树茶叶礼盒装（500克）" * 4,
}
REASONS = {
    "none": "",
    "short": "回甘很好！",
    "long": "我自己喝了三年，回甘很好，冲泡七八次还有味道。送长辈也体面，包装很结实。" * 4,
}
URL = "http://127.0.0.1:8000/s/7KX9M2PQ4RTW?src=qr"
GRID = list(itertools.product(domain.POSTER_STYLES, TITLES, REASONS, (True, False)))


@pytest.mark.parametrize("style", domain.POSTER_STYLES)
@pytest.mark.parametrize("title_lines", range(0, 6))
@pytest.mark.parametrize("reason_lines", range(0, 9))
@pytest.mark.parametrize("has_photo", (True, False))
def test_no_two_boxes_overlap_and_all_lie_inside_the_canvas(
    style, title_lines, reason_lines, has_photo
):
    boxes = domain.POSTER_LAYOUTS[style](title_lines, reason_lines, has_photo)
    assert domain.layout_problems(boxes) == []
    assert {"photo", "title", "price", "qr", "shop_name"} <= set(boxes)
    assert ("reason" in boxes) == (reason_lines > 0)


@pytest.mark.parametrize("has_photo", (True, False))
def test_the_card_stays_on_the_white_card_and_the_photo_gives_way_to_text(has_photo):
    x0, y0, x1, y1 = domain.CARD_INNER
    for t, r in itertools.product(range(1, 3), range(0, 4)):
        for name, box in domain.card_layout(t, r, has_photo).items():
            assert x0 <= box[0] and box[2] <= x1 and y0 <= box[1] and box[3] <= y1, name
    roomy = domain.card_layout(1, 0, has_photo)["photo"]
    tight = domain.card_layout(2, 3, has_photo)["photo"]
    assert tight[3] - tight[1] <= roomy[3] - roomy[1]
    assert tight[3] - tight[1] >= 400  # the photo stays a real photo


def test_overlapping_boxes_are_reported():
    assert domain.boxes_intersect((0, 0, 10, 10), (5, 5, 15, 15))
    assert not domain.boxes_intersect((0, 0, 10, 10), (10, 0, 20, 10))  # touching is fine
    problems = domain.layout_problems({"a": (0, 0, 10, 10), "b": (5, 5, 800, 15)})
    assert any("overlaps" in p for p in problems) and any("canvas" in p for p in problems)


@pytest.fixture(scope="module")
def renderer():
    return PosterRenderer(find_cjk_font()[0])


@pytest.mark.parametrize(("style", "title", "reason", "has_photo"), GRID)
def test_every_poster_of_the_grid_decodes_to_the_scan_url(
    renderer, style, title, reason, has_photo
):
    photo = Image.linear_gradient("L").resize((1600, 900)).convert("RGB") if has_photo else None
    drawn = {
        "title": TITLES[title],
        "price_fen": 3990,
        "shop_name": "阿花的小铺",
        "reason": REASONS[reason],
        "url": URL,
        "shop_number": "384920",
        "code": "7KX9-M2PQ-4RTW",
    }
    data = renderer.render(style, drawn, photo, "gradient" if has_photo else "placeholder")
    img = Image.open(io.BytesIO(data))
    assert img.size == domain.POSTER_SIZE
    assert decode_qr(data) == URL  # zxing-cpp: independent of the qrcode encoder


def test_the_placeholder_is_a_designed_panel_without_the_old_giant_text(renderer):
    panel = renderer.placeholder((610, 460))
    assert panel.size == (610, 460)
    # warm, light panel: no large dark glyph covers its centre
    centre = panel.crop((205, 130, 405, 330)).convert("L")
    dark = sum(centre.histogram()[:80])
    assert dark == 0
