"""shared.text: the one human-text type (issue 13: spoofing, NUL, zero-width smuggling)."""

import pytest
from pydantic import BaseModel, ValidationError

from shared.text import Text, clean, contains_word, match_form


class Note(BaseModel):
    title: Text(max_chars=10, min_chars=1)
    body: Text(max_chars=50, multiline=True) | None = None


def errors(data):
    with pytest.raises(ValidationError) as exc:
        Note.model_validate(data)
    return {".".join(map(str, e["loc"])): e["msg"] for e in exc.value.errors()}


@pytest.mark.parametrize(
    "bad", ["a\x00b", "a\x07b", "a\nb", "\u202e0001 价原", "x\u2066y", "\ud800"]
)
def test_control_bidi_and_surrogate_characters_are_refused_naming_the_field(bad):
    assert "title" in errors({"title": bad})


def test_newline_and_tab_are_allowed_only_where_multiline():
    assert (
        Note.model_validate({"title": "t", "body": "第一行\n\t第二行"}).body == "第一行\n\t第二行"
    )
    assert "body" in errors({"title": "t", "body": "a\x00"})


def test_zero_width_characters_are_stripped_and_length_counts_characters():
    assert Note.model_validate({"title": "官\u200b方旗\u200d舰店"}).title == "官方旗舰店"
    assert Note.model_validate({"title": "一二三四五六七八九十"}).title == "一二三四五六七八九十"
    assert "title" in errors({"title": "一二三四五六七八九十一"})
    assert "title" in errors({"title": " \u200b "})  # nothing left after cleaning


def test_non_strings_are_refused_not_coerced():
    assert "title" in errors({"title": 12})


def test_word_rules_match_through_disguises():
    words = ("旗舰", "official")
    assert contains_word("官\u200b方旗\u200d舰店", words) == "旗舰"
    assert contains_word("ＯＦＦＩＣＩＡＬ shop", words) == "official"
    assert contains_word("旗 舰", words) == "旗舰"
    assert contains_word("小张的店", words) is None
    assert match_form("Ａ Ｂ") == "ab"


def test_stored_text_keeps_chinese_punctuation():
    assert clean("你好，世界！") == "你好，世界！"


def test_clean_field_is_a_service_length_rule_as_a_422_naming_the_field():
    from shared.errors import ValidationFailed
    from shared.text import clean_field

    assert clean_field(" 好用\r\n不贵 ", "reason", 10, multiline=True) == "好用\n不贵"
    assert clean_field("   ", "reason", 10) is None
    assert clean_field(None, "reason", 10) is None
    for bad, kwargs in (
        ("a\x00", {}),
        ("\u200f12", {}),  # an invisible right-to-left mark
        ("一二三", {"min_chars": 4}),
        ("一" * 11, {}),
        (" ", {"required": True}),
    ):
        with pytest.raises(ValidationFailed) as refused:
            clean_field(bad, "reason", 10, **kwargs)
        assert refused.value.details[0]["field"] == "reason"


def test_the_schema_declares_the_lengths():
    props = Note.model_json_schema()["properties"]
    assert props["title"]["maxLength"] == 10
    assert props["title"]["minLength"] == 1
