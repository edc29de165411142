"""The share rules of PRODUCT.md ("Sharing") as pure functions."""

import math
import unicodedata
from datetime import UTC, datetime

from share import domain
from share.domain import (
    CODE_ALPHABET,
    CODE_BITS,
    ShareRules,
    TokenBuckets,
    VisitLimits,
    admit_visits,
    build_copy,
    count_chars,
    display_code,
    extract_codes,
    fold_copy,
    new_code,
    normalise_code,
    wrap_text,
    yuan,
)


# --- codes ---------------------------------------------------------------------------------
def test_codes_carry_at_least_60_bits_from_a_read_aloud_alphabet():
    assert CODE_BITS >= 60
    assert len(CODE_ALPHABET) ** domain.CODE_LENGTH >= 2**60
    assert not set("0O1lI") & set(CODE_ALPHABET)
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == domain.CODE_LENGTH and set(c) <= set(CODE_ALPHABET) for c in codes)


def test_a_code_is_found_inside_a_pasted_message():
    code = new_code()
    assert extract_codes(f"看看这个 {display_code(code)} 超划算") == [code]


def test_full_width_and_half_width_wrappers_and_letters_are_accepted():
    code = new_code()
    full_width = unicodedata.normalize("NFKC", code).translate(
        {ord(c): ord(c) + 0xFEE0 for c in code}
    )  # Ｘｙ… full-width forms
    for text in (
        f"￥{code}￥",
        f"¥{code}¥",
        f"${code}$",
        f"＄{code}＄",
        f"￥{full_width}￥",
        f"￥{code.lower()}￥",
        f"复制{code}打开",
    ):
        assert extract_codes(text) == [code], text


def test_a_price_in_the_same_message_does_not_hide_the_code():
    code = new_code()
    text = f"【红茶】到手价¥39.90，阿花小铺推荐。\n复制这条消息￥{code}￥打开小铺即可下单"
    assert extract_codes(text)[0] == code


def test_text_without_a_code_has_none():
    assert extract_codes("看看这个 超划算 ￥39.90") == []
    assert extract_codes("") == []
    assert normalise_code("O0O0O0O0O0O0") is None


# --- copy ----------------------------------------------------------------------------------
def test_money_is_shown_in_yuan_from_fen():
    assert yuan(3990) == "¥39.90"
    assert yuan(3900) == "¥39"
    assert yuan(5) == "¥0.05"


def test_every_character_counts_one_including_cjk():
    assert count_chars("小铺ab，。\n") == 7


def test_short_copy_is_not_folded_and_carries_the_code():
    body, code_line = build_copy("红茶", 3990, "好喝", "阿花小铺", "7KX9M2PQ4RTW")
    post, comment = fold_copy(body, code_line, 140)
    assert comment == ""
    assert "￥7KX9M2PQ4RTW￥" in post and "¥39.90" in post and "好喝" in post


def test_a_300_character_copy_is_split_with_the_code_in_the_comment():
    code = new_code()
    reason = ("这款茶我自己喝了三年，回甘很好，冲泡五次以上依然有味道。" * 12)[:260]
    body, code_line = build_copy("云南高山有机红茶", 3990, reason, "阿花小铺", code)
    assert count_chars(f"{body}\n{code_line}") >= 300
    post, comment = fold_copy(body, code_line, 140)
    assert count_chars(post) <= 140
    assert post[-1] in "。！？；，.!?;,\n"  # cut at a sentence or clause boundary
    assert display_code(code) in comment and code not in post
    assert (post + comment).replace("\n", "").startswith(body.replace("\n", "")[:100])
    assert extract_codes(comment) == [code]


def test_folding_prefers_a_sentence_end_over_a_later_comma():
    body = "一" * 80 + "。" + "二" * 50 + "，" + "三" * 60
    post, comment = fold_copy(body, "￥ABCDEFGHJKMN￥", 140)
    assert post == "一" * 80 + "。"
    assert comment.startswith("二")


def test_folding_without_any_boundary_cuts_at_the_limit():
    post, comment = fold_copy("字" * 300, "CODE", 140)
    assert count_chars(post) == 140 and comment.endswith("CODE")


def test_decimal_points_are_not_cut_points():
    body = "价格39.90元" + "好" * 200
    assert all(body[pos - 1] != "." for pos, _ in domain._boundaries(body))


def test_the_fold_limit_is_configuration():
    assert ShareRules().fold_limit == 140
    assert ShareRules.from_config({"fold_limit": "100"}).fold_limit == 100


# --- wrapping ------------------------------------------------------------------------------
def test_chinese_wraps_between_any_two_characters():
    assert wrap_text("一二三四五六七八九十", len, 4) == ["一二三四", "五六七八", "九十"]


def test_closing_punctuation_never_starts_a_line():
    lines = wrap_text("一二三四，五六七八。九十", len, 4)
    assert all(line[0] not in domain.NO_LINE_START for line in lines)
    assert "".join(lines) == "一二三四，五六七八。九十"
    assert all(len(line) <= 4 for line in lines)


def test_opening_punctuation_never_ends_a_line():
    lines = wrap_text("一二三《四五》六", len, 4)
    assert all(line[-1] not in domain.NO_LINE_END for line in lines)


def test_latin_words_stay_whole():
    lines = wrap_text("好茶 Yunnan Black Tea 500g", len, 10)
    assert "Yunnan" in lines[0] or "Yunnan" in lines[1]
    assert all(len(line) <= 10 for line in lines)
    assert " ".join(lines).replace("  ", " ").count("Yunnan") == 1


def test_too_long_text_ends_with_an_ellipsis_within_the_width():
    lines = wrap_text("字" * 50, len, 10, max_lines=2)
    assert len(lines) == 2 and lines[-1].endswith("…") and len(lines[-1]) <= 10


def test_wrapping_with_the_real_font_keeps_every_line_inside_the_width():
    from PIL import ImageFont

    from share.posters import find_cjk_font

    path, _ = find_cjk_font()
    font = ImageFont.truetype(path, 36)
    text = "云南高山有机红茶，特级滇红古树茶叶礼盒装（500克）！送礼佳品。" * 3
    lines = wrap_text(text, font.getlength, 600, max_lines=3)
    assert len(lines) == 3 and lines[-1].endswith("…")
    assert all(font.getlength(line) <= 600 for line in lines)
    assert all(line[0] not in domain.NO_LINE_START for line in lines)


# --- flood control -------------------------------------------------------------------------
def test_a_flood_from_one_visitor_is_counted_only_up_to_its_burst():
    buckets = TokenBuckets(capacity=5, refill_seconds=12)
    assert sum(buckets.allow("v1", 1000.0) for _ in range(100)) == 5
    assert buckets.allow("v1", 1012.0)  # one more after the refill period
    assert buckets.allow("v2", 1000.0)  # other visitors are unaffected


def limits():
    return VisitLimits.from_rules(ShareRules())


def test_a_returning_visitor_hammering_is_counted_only_up_to_the_burst():
    visits = [{"visitor_id": "v1", "client": "1.2.3.4", "t": 10.0} for _ in range(50)]
    counted, throttled = admit_visits(visits, limits(), epoch=lambda v: v["t"])
    assert len(counted) == ShareRules().visitor_burst and throttled == 45


def test_1000_distinct_visitors_behind_one_address_are_all_counted():
    visits = [{"visitor_id": f"v{i}", "client": "1.2.3.4", "t": 10.0} for i in range(1000)]
    counted, _ = admit_visits(visits, limits(), epoch=lambda v: v["t"])
    assert len(counted) == 1000


def test_a_client_inventing_a_cookie_per_request_hits_the_address_ceiling():
    visits = [{"visitor_id": f"fake{i}", "client": "1.2.3.4", "t": 10.0} for i in range(5000)]
    counted, _ = admit_visits(visits, limits(), epoch=lambda v: v["t"])
    assert len(counted) == ShareRules().address_burst


def test_cookie_less_requests_from_one_address_are_limited_as_one_client():
    visits = [
        {"visitor_id": f"new{i}", "new_visitor": True, "client": "1.2.3.4", "t": 10.0}
        for i in range(500)
    ]
    counted, _ = admit_visits(visits, limits(), epoch=lambda v: v["t"])
    assert len(counted) == ShareRules().anonymous_burst


def test_buckets_stay_bounded_in_memory():
    buckets = TokenBuckets(5, 1, max_keys=100)
    for i in range(1000):
        buckets.allow(str(i), 0.0)
    assert len(buckets._buckets) == 100


# --- stats ---------------------------------------------------------------------------------
def test_stats_days_are_china_days_by_default():
    late = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # 01:00 on the 25th in Beijing
    assert domain.stats_day(late) == "2026-11-25"
    assert domain.stats_day(late, 0) == "2026-11-24"


def test_stats_add_visits_orders_gmv_and_conversion_by_day_and_share():
    stats = domain.assemble_stats(
        7,
        [("2026-11-24", "s1", 10, 8), ("2026-11-24", "s2", 5, 5), ("2026-11-25", "s1", 5, 5)],
        [("2026-11-24", "s1", 2, 7980), ("2026-11-25", None, 1, 100)],
        {"s1": ("AAAA", 1), "s2": ("BBBB", 2)},
    )
    assert stats["totals"] == {
        "visits": 20,
        "orders": 3,
        "gmv_fen": 8080,
        "conversion": 0.15,
        "scans": 0,  # no kind rows given: nothing is told apart
        "opens": 0,
        "pastes": 0,
    }
    day1 = stats["by_day"][0]
    assert day1["day"] == "2026-11-24" and day1["visits"] == 15 and day1["orders"] == 2
    s1 = next(s for s in stats["by_share"] if s["share_id"] == "s1")
    assert s1["visits"] == 15 and s1["orders"] == 2 and s1["gmv_fen"] == 7980
    assert math.isclose(s1["conversion"], round(2 / 15, 4))
    direct = next(s for s in stats["by_share"] if s["share_id"] is None)
    assert direct["orders"] == 1 and direct["conversion"] is None


def test_stats_tell_scans_opens_and_pastes_apart_by_day_and_share():
    stats = domain.assemble_stats(
        7,
        [("2026-11-24", "s1", 6, 4), ("2026-11-25", "s2", 2, 2)],
        [],
        {"s1": ("AAAA", 1), "s2": ("BBBB", 2)},
        [
            ("2026-11-24", "s1", "scan", 3),
            ("2026-11-24", "s1", "landing", 2),
            ("2026-11-24", "s1", "resolve", 1),
            ("2026-11-25", "s2", "landing", 2),
        ],
    )
    t = stats["totals"]
    assert (t["visits"], t["scans"], t["opens"], t["pastes"]) == (8, 3, 4, 1)
    day1, day2 = stats["by_day"]
    assert (day1["scans"], day1["opens"], day1["pastes"]) == (3, 2, 1)
    assert (day2["scans"], day2["opens"], day2["pastes"]) == (0, 2, 0)
    s1 = next(s for s in stats["by_share"] if s["share_id"] == "s1")
    assert (s1["scans"], s1["opens"], s1["pastes"], s1["visits"]) == (3, 2, 1, 6)
    assert domain.visit_kind_stat("scan") == "scans"
    assert domain.visit_kind_stat("resolve") == "pastes"
    assert domain.visit_kind_stat("landing") == "opens"
