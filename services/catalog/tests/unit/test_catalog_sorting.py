"""Browse orders, their opaque cursors and the units-sold / gallery rules (issue 17)."""

import pytest

from catalog import domain

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("sort", domain.SORTS)
def test_a_cursor_round_trips_within_its_own_sort_only(sort):
    cursor = domain.encode_cursor(42, sort, 1234)
    key, last_id = domain.decode_sorted_cursor(cursor, sort)
    assert last_id == 42 and key == (0 if sort == "newest" else 1234)
    for other in domain.SORTS:
        if other != sort:
            with pytest.raises(ValueError):
                domain.decode_sorted_cursor(cursor, other)


def test_the_newest_cursor_keeps_its_old_shape():
    assert domain.decode_cursor(domain.encode_cursor(7)) == 7
    with pytest.raises(ValueError):
        domain.decode_cursor("bm90LWEtY3Vyc29y")


def test_an_unknown_sort_is_named():
    assert domain.sort_problem("commission") is None and domain.sort_problem(None) is None
    assert domain.sort_problem("price")["field"] == "sort"


def test_commission_order_follows_the_commission_in_fen():
    assert domain.sort_key("commission", 20000, 1500, 0) > domain.sort_key(
        "commission", 9900, 1500, 0
    )
    assert domain.sort_key("sales", 1, 1, 17) == 17


def test_units_sold_never_fall_below_zero():
    assert domain.units_sold_after(3, 2) == 5
    assert domain.units_sold_after(3, -5) == 0


def test_a_gallery_holds_at_most_nine_images():
    assert domain.gallery_problems(9) == []
    assert domain.gallery_problems(10)[0]["rule"] == "gallery_size"
