"""Human text: the one type every contract field that holds words a person typed goes through.

    from shared.text import Text
    class ProductIn(BaseModel):
        title: Text(max_chars=60, min_chars=1)
        description: Text(max_chars=2000, multiline=True) | None = None

What it does, in order:
1. refuses characters that can deceive a reader or break storage (422 naming the field):
   NUL and every other control character (tab and newline only where ``multiline``), lone
   surrogates, and the bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069,
   U+061C) that make "¥10 原价¥1000" read backwards;
2. strips zero-width characters (U+200B–U+200D, U+2060, U+FEFF, U+180E), which hide words
   from filters (``官\\u200b方旗\\u200d舰店``), and normalises to NFC;
3. trims surrounding white space and checks the length in characters (not bytes).

Rules that match WORDS (forbidden shop-name words, self-referral names, search) compare
``match_form(text)``: NFKC (full-width Ａ → A, compatibility forms folded), case-folded,
without white space — so "官 方", "ＯＦＦＩＣＩＡＬ" and "官\\u200b方" all match "官方"/"official".
The stored text keeps its own punctuation (NFKC would turn the Chinese "，" into ",").
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from shared.errors import ValidationFailed

ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u180e"), None)
# overrides, embeddings, isolates, and the invisible direction marks (LRM, RLM, ALM)
BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c\u200e\u200f"
)
MULTILINE_ALLOWED = frozenset("\n\t")


class UnsafeText(ValueError):
    """The text holds a character that is refused (the message names it)."""


def _describe(ch: str) -> str:
    return f"U+{ord(ch):04X} {unicodedata.name(ch, 'control character')}"


def refused_character(text: str, multiline: bool = False) -> str | None:
    """The first refused character of ``text`` described for the error message, or None."""
    for ch in text:
        if ch in BIDI_CONTROLS:
            return _describe(ch) + " (reorders the text around it)"
        category = unicodedata.category(ch)
        if category == "Cc" and not (multiline and ch in MULTILINE_ALLOWED):
            return _describe(ch)
        if category == "Cs":
            return f"U+{ord(ch):04X} (a lone surrogate)"
        if ch in "\u2028\u2029" and not multiline:
            return _describe(ch)
    return None


def clean(text: str, multiline: bool = False) -> str:
    """``text`` made safe to store and show, or UnsafeText naming the refused character.
    Where ``multiline``, a Windows line end (CR LF) counts as a newline."""
    if multiline:
        text = text.replace("\r\n", "\n")
    bad = refused_character(text, multiline)
    if bad:
        raise UnsafeText(f"contains a character that is not allowed: {bad}")
    return unicodedata.normalize("NFC", text.translate(ZERO_WIDTH)).strip()


def clean_field(
    value: Any,
    field: str,
    max_chars: int,
    *,
    min_chars: int = 0,
    multiline: bool = False,
    required: bool = False,
) -> str | None:
    """A service's own (configured) length rule on human text, as a 422 naming ``field``:
    ``clean``, then ``min_chars``..``max_chars`` characters.
    Blank text is None (``ValidationFailed`` when ``required``)."""
    if value is None:
        text = ""
    else:
        try:
            text = clean(str(value), multiline)
        except UnsafeText as exc:
            raise ValidationFailed(
                f"{field} {exc}", details=[{"field": field, "message": str(exc)}]
            ) from None
    if not text:
        if required:
            raise ValidationFailed(
                f"{field} is required", details=[{"field": field, "message": "must not be blank"}]
            )
        return None
    if not min_chars <= len(text) <= max_chars:
        raise ValidationFailed(
            f"{field} must be {min_chars}–{max_chars} characters long",
            details=[
                {
                    "field": field,
                    "message": f"{len(text)} characters; allowed {min_chars}–{max_chars}",
                }
            ],
        )
    return text


def match_form(text: str) -> str:
    """The form word rules compare: NFKC, case-folded, no zero-width or white space."""
    folded = unicodedata.normalize("NFKC", text.translate(ZERO_WIDTH)).casefold()
    return "".join(ch for ch in folded if not ch.isspace())


def contains_word(text: str, words: Any) -> str | None:
    """The first of ``words`` found in ``text`` (both in match form), or None."""
    haystack = match_form(text)
    for word in words:
        if word and match_form(word) in haystack:
            return str(word)
    return None


def Text(  # noqa: N802 - reads as a type in model annotations
    max_chars: int, min_chars: int = 0, multiline: bool = False
) -> Any:
    """A pydantic string type for human text (see the module docstring)."""

    def check(value: str) -> str:
        cleaned = clean(value, multiline)
        if len(cleaned) < min_chars:
            wanted = f"at least {min_chars} characters" if min_chars > 1 else "not empty"
            raise ValueError(f"must be {wanted}")
        if len(cleaned) > max_chars:
            raise ValueError(f"must be at most {max_chars} characters (got {len(cleaned)})")
        return cleaned

    def must_be_text(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return value

    # the schema says what is accepted (lengths counted after cleaning; control characters and
    # direction overrides are refused, see the module docstring)
    schema: dict[str, Any] = {"maxLength": max_chars}
    if min_chars:
        schema["minLength"] = min_chars
    return Annotated[
        str,
        BeforeValidator(must_be_text),
        AfterValidator(check),
        Field(json_schema_extra=schema),
    ]
