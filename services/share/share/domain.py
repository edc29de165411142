"""The share rules of PRODUCT.md ("Sharing"), in plain Python (no nameko, no SQLAlchemy).

* share codes (口令): ``new_code``, ``display_code``, ``extract_codes``;
* copy text (文案) and its folding at WeChat's fold limit: ``build_copy``, ``fold_copy``;
* poster text layout: ``wrap_text`` (character-level breaking for Chinese, kinsoku, ellipsis);
* visit flood control: ``TokenBuckets``, ``VisitLimits``, ``admit_visits``;
* last-click attribution: ``visit_window_start`` (the window is the caller's, orders owns it);
* money for display: ``yuan``; the stats read model's arithmetic: ``assemble_stats``.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from shared.lru import LRU
from shared.rules import ConfiguredRules


# --- rules (every number is configuration: config.yml RULES, defaults here) -----------------
@dataclass(frozen=True)
class ShareRules(ConfiguredRules):
    fold_limit: int = 140  # WeChat folds copy over this many characters
    visitor_burst: int = 5  # visits counted per visitor (xp_vid) in a burst ...
    visitor_refill_seconds: float = 12.0  # ... then one more every N seconds
    anonymous_burst: int = 60  # cookie-less visits counted per address in a burst
    anonymous_refill_seconds: float = 1.0  # ... then one more every N seconds
    address_burst: int = 2000  # all visits counted per address (a NAT serves many)
    address_refill_seconds: float = 0.05  # ... then 20 more per second
    facts_ttl_seconds: float = 60.0  # share → product/shop facts cache (events invalidate)
    landing_cache_seconds: float = 5.0  # how long the gateway may reuse a landing page
    stats_utc_offset_hours: int = 8  # stats days are China Standard Time (UTC+8)


# --- share codes (口令) -----------------------------------------------------------------------
# 32 symbols, read-aloud friendly and case-insensitive: no 0/O, no 1/I/l (lower case input is
# upper-cased, so "l" can only mean "L"). 12 symbols × 5 bits = 60 bits from ``secrets``.
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_LENGTH = 12
CODE_BITS = CODE_LENGTH * 5
_ALPHABET_SET = frozenset(CODE_ALPHABET)
_WRAPPED = re.compile(rf"[¥$]\s*([A-Za-z0-9]{{{CODE_LENGTH}}})\s*[¥$]")
_BARE = re.compile(rf"(?<![A-Za-z0-9])([A-Za-z0-9]{{{CODE_LENGTH}}})(?![A-Za-z0-9])")
MAX_CANDIDATES = 8


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def display_code(code: str) -> str:
    """How a code travels in text: wrapped in full-width yen signs, like ``￥7KX9M2PQ4RTW￥``."""
    return f"￥{code}￥"


def is_code(candidate: str) -> bool:
    return len(candidate) == CODE_LENGTH and all(c in _ALPHABET_SET for c in candidate)


def normalise_code(candidate: str) -> str | None:
    """Upper-case a candidate after NFKC (full-width letters become ASCII); None if invalid."""
    value = unicodedata.normalize("NFKC", candidate).strip().upper()
    return value if is_code(value) else None


def extract_codes(text: str) -> list[str]:
    """Every share code in a pasted message, wrapped ones (¥/￥/$, either width) first.

    NFKC folds full-width letters, digits and ``￥``/``＄`` to their ASCII forms, so a code
    typed on a Chinese keyboard still matches. A bare 12-symbol token counts too.
    """
    if not text:
        return []
    norm = unicodedata.normalize("NFKC", str(text))
    found: list[str] = []
    for pattern in (_WRAPPED, _BARE):
        for match in pattern.finditer(norm):
            value = match.group(1).upper()
            if is_code(value) and value not in found:
                found.append(value)
                if len(found) >= MAX_CANDIDATES:
                    return found
    return found


# --- money ----------------------------------------------------------------------------------
def yuan(fen: int) -> str:
    """``3990`` → ``¥39.90``; whole amounts without decimals (``3900`` → ``¥39``)."""
    fen = int(fen)
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole}" if cents == 0 else f"{sign}¥{whole}.{cents:02d}"


# --- copy text (文案) and folding -----------------------------------------------------------
def count_chars(text: str) -> int:
    """Length the way WeChat's fold counts it: every character is 1 (CJK, Latin, punctuation,
    newline alike). We count Unicode code points after NFC composition."""
    return len(unicodedata.normalize("NFC", text))


def build_copy(
    title: str, price_fen: int, reason: str | None, shop_name: str, code: str
) -> tuple[str, str]:
    """The ready copy: (body, code line). The code line is what opens the share in the app."""
    parts = [f"【{title.strip()}】"]
    if reason and reason.strip():
        parts.append(reason.strip())
    parts.append(f"到手价{yuan(price_fen)}，{shop_name.strip()}推荐。")
    body = "\n".join(parts)
    code_line = f"复制这条消息{display_code(code)}打开小铺即可下单"
    return body, code_line


_CJK_STOPS = "。！？；，\n"
_CJK_SENTENCE = "。！？\n"
_ASCII_STOPS = ".!?;,"
_ASCII_SENTENCE = ".!?"


def _boundaries(text: str) -> list[tuple[int, bool]]:
    """Cut positions after a sentence/clause mark: (index after the mark, is sentence end).
    ASCII marks count only when followed by a space, the end or non-ASCII (so 39.90 and 1,000
    are not cut)."""
    out = []
    for i, ch in enumerate(text):
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if ch in _CJK_STOPS:
            out.append((i + 1, ch in _CJK_SENTENCE))
        elif ch in _ASCII_STOPS and (not nxt or nxt.isspace() or ord(nxt) > 127):
            out.append((i + 1, ch in _ASCII_SENTENCE))
    return out


def fold_copy(body: str, code_line: str, limit: int = 140) -> tuple[str, str]:
    """Split copy over the fold ``limit`` into (post, first comment).

    Fits → (body + code line, ""). Otherwise the post is the longest prefix of the body that
    ends at a sentence boundary (or a clause boundary when no sentence end falls in the second
    half of the limit) and is at most ``limit`` characters; the comment is the rest of the body
    plus the code line, so the code is always in the comment. No boundary at all → hard cut.
    """
    body = unicodedata.normalize("NFC", body)
    full = f"{body}\n{code_line}"
    if count_chars(full) <= limit:
        return full, ""
    if count_chars(body) <= limit:
        return body.rstrip(), code_line
    cuts = [
        (pos, sentence)
        for pos, sentence in _boundaries(body)
        if count_chars(body[:pos].rstrip()) <= limit and body[:pos].strip()
    ]
    sentence_cuts = [pos for pos, sentence in cuts if sentence and pos >= limit // 2]
    if sentence_cuts:
        cut = max(sentence_cuts)
    elif cuts:
        cut = max(pos for pos, _ in cuts)
    else:
        cut = limit
    post = body[:cut].rstrip()
    rest = body[cut:].strip()
    comment = f"{rest}\n{code_line}" if rest else code_line
    return post, comment


# --- text layout for posters ----------------------------------------------------------------
# Kinsoku (禁则): these never start a line ...
NO_LINE_START = frozenset("，。！？、；：）》」』】〕〉”’…·,.!?;:)]}%～—")
# ... and these never end one.
NO_LINE_END = frozenset("（《「『【〔〈“‘([{¥￥$")
ELLIPSIS = "…"
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9.'_-]*|\s+|.", re.S)


def _units(text: str) -> list[str]:
    """Breakable units: a CJK character (or any symbol) alone, a Latin word/number whole."""
    return _WORD.findall(text)


def wrap_text(
    text: str,
    measure: Callable[[str], float],
    max_width: float,
    max_lines: int | None = None,
    ellipsis: str = ELLIPSIS,
) -> list[str]:
    """Lines of ``text`` no wider than ``max_width`` (by ``measure``), broken between any two
    CJK characters or between Latin words; closing punctuation is kept off line starts (the
    character before it moves down with it) and opening punctuation off line ends. More than
    ``max_lines`` lines → the last kept line ends with an ellipsis."""
    lines: list[str] = []
    for paragraph in unicodedata.normalize("NFC", text or "").split("\n"):
        lines.extend(_wrap_paragraph(paragraph, measure, max_width))
    while lines and not lines[-1]:
        lines.pop()
    if max_lines is not None and len(lines) > max_lines:
        kept = lines[:max_lines]
        last = kept[-1]
        while last and (
            measure(last + ellipsis) > max_width
            or last[-1] in NO_LINE_END
            or last[-1] in "，、；：,;: "
        ):
            last = last[:-1]
        kept[-1] = last + ellipsis
        return kept
    return lines


def _wrap_paragraph(text: str, measure, max_width) -> list[str]:
    units: list[str] = []
    for unit in _units(text):
        if len(unit) > 1 and not unit.isspace() and measure(unit) > max_width:
            units.extend(unit)  # a word wider than a line breaks by character
        else:
            units.append(unit)
    lines: list[str] = []
    current = ""
    for unit in units:
        if not current and unit.isspace():
            continue
        candidate = current + unit
        if not current or measure(candidate) <= max_width:
            current = candidate
            continue
        if unit.isspace():
            lines.append(current.rstrip())
            current = ""
            continue
        carry = ""
        if unit[0] in NO_LINE_START:
            # move characters down with the punctuation (never leave the line empty)
            while len(current) > 1 and (not carry or carry[0] in NO_LINE_START):
                carry = current[-1] + carry
                current = current[:-1]
            if current[-1:] in NO_LINE_END and len(current) > 1:
                carry = current[-1] + carry
                current = current[:-1]
            if carry and measure(carry + unit) > max_width:
                current, carry = current + carry + unit, ""  # nothing fits: hang it
                continue
        elif current[-1] in NO_LINE_END and len(current) > 1:
            carry = current[-1]
            current = current[:-1]
        lines.append(current.rstrip())
        current = carry + unit
    if current.strip():
        lines.append(current.rstrip())
    return lines


# --- poster identity ------------------------------------------------------------------------
POSTER_STYLES = ("classic", "card")
QR_SOURCE_PARAM = "src=qr"  # the poster's QR URL carries it: a visit with it is a scan
POSTER_SIZE = (750, 1334)


def poster_key(style: str, drawn: dict) -> str:
    """A hash of everything a poster draws: an unchanged share is never rendered twice, and a
    changed price (title, reason, image, link ...) is a new key."""
    payload = json.dumps({"style": style, **drawn}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# --- poster layout --------------------------------------------------------------------------
# Every box a poster draws, as (x0, y0, x1, y1) on the 750×1334 canvas, from how many lines the
# title and the reason take (the renderer wraps them first with ``wrap_text``) and whether the
# product has a photo. The photo gives way so the text and the QR panel never meet; tests check
# that no two boxes intersect and that all lie inside the canvas for every combination.
Box = tuple[int, int, int, int]
TITLE_MAX_LINES = 2
CARD_REASON_MAX_LINES = 3
CLASSIC_REASON_MAX_LINES = 4
# text sizes (px) and line heights of the two styles; ``share.posters`` draws with these
CARD_TITLE_SIZE, CARD_TITLE_LINE = 36, 47
CARD_REASON_SIZE, CARD_REASON_LINE = 26, 34
CLASSIC_TITLE_SIZE, CLASSIC_TITLE_LINE = 40, 52
CLASSIC_REASON_SIZE, CLASSIC_REASON_LINE = 28, 37
CARD_INNER: Box = (30, 30, 720, 1304)  # the white card on the coloured background


def _clamp_lines(lines: int, most: int) -> int:
    return max(0, min(int(lines), most))


def card_layout(title_lines: int, reason_lines: int, has_photo: bool) -> dict[str, Box]:
    """The card style: header (shop name; 掌柜推荐 · 店铺号), the photo (a square, or a shorter
    designed placeholder), the price tag, the title, the reason box, and at the bottom the QR
    panel with the scan hint, the share code (口令) and the shop number beside it."""
    w, _ = POSTER_SIZE
    x0, x1 = 70, w - 70
    title_h = max(1, _clamp_lines(title_lines, TITLE_MAX_LINES)) * CARD_TITLE_LINE
    reasons = _clamp_lines(reason_lines, CARD_REASON_MAX_LINES)
    reason_h = 40 + reasons * CARD_REASON_LINE if reasons else 0
    qr: Box = (x0, CARD_INNER[3] - 40 - 180, x0 + 180, CARD_INNER[3] - 40)
    content_bottom = qr[1] - 28  # room for the dashed rule above the QR panel
    photo_top = 160
    below_photo = 20 + 70 + 18 + title_h + (16 + reason_h if reasons else 0)
    room = content_bottom - photo_top - below_photo
    boxes: dict[str, Box] = {
        "shop_name": (x0, 56, x1, 100),
        "subtitle": (x0, 108, x1, 142),
    }
    if has_photo:
        side = min(x1 - x0, room)
        left = (w - side) // 2
        boxes["photo"] = (left, photo_top, left + side, photo_top + side)
    else:
        boxes["photo"] = (x0, photo_top, x1, photo_top + min(460, room))
    y = boxes["photo"][3] + 20
    boxes["price"] = (x0, y, x1, y + 70)
    y += 70 + 18
    boxes["title"] = (x0, y, x1, y + title_h)
    y += title_h
    if reasons:
        boxes["reason"] = (x0, y + 16, x1, y + 16 + reason_h)
    boxes["qr"] = qr
    boxes["qr_text"] = (qr[2] + 30, qr[1], x1, qr[3])
    return boxes


def classic_layout(title_lines: int, reason_lines: int, has_photo: bool) -> dict[str, Box]:
    """The classic style: the photo across the top (or a shorter designed placeholder), the
    title, the price, a rule; below it the shop name, the quoted reason, the share code and the
    shop number on the left, and the QR code with its hint on the right."""
    w, h = POSTER_SIZE
    m = 40
    title_h = max(1, _clamp_lines(title_lines, TITLE_MAX_LINES)) * CLASSIC_TITLE_LINE
    reasons = _clamp_lines(reason_lines, CLASSIC_REASON_MAX_LINES)
    reason_h = reasons * CLASSIC_REASON_LINE
    qr: Box = (w - m - 220, h - m - 40 - 220, w - m, h - m - 40)
    caption: Box = (qr[0], qr[3] + 6, qr[2], h - m)
    left_x1 = qr[0] - 30
    # below the photo: title, price, rule, then the left column (shop name, reason, ids)
    fixed = 30 + title_h + 10 + 80 + 16 + 2
    column = 24 + 40 + (10 + reason_h if reasons else 0) + 16 + 72
    room = h - m - fixed - column
    height = min(w, room) if has_photo else min(600, room)
    boxes: dict[str, Box] = {"photo": (0, 0, w, height)}
    y = height + 30
    boxes["title"] = (m, y, w - m, y + title_h)
    y += title_h + 10
    boxes["price"] = (m, y, w - m, y + 80)
    y += 80 + 16
    boxes["rule"] = (m, y, w - m, y + 2)
    y += 2 + 24
    boxes["shop_name"] = (m, y, left_x1, y + 40)
    y += 40
    if reasons:
        boxes["reason"] = (m, y + 10, left_x1, y + 10 + reason_h)
        y += 10 + reason_h
    boxes["ids"] = (m, y + 16, left_x1, y + 16 + 72)
    boxes["qr"] = qr
    boxes["qr_caption"] = caption
    return boxes


POSTER_LAYOUTS = {"card": card_layout, "classic": classic_layout}


def boxes_intersect(a: Box, b: Box) -> bool:
    """Two boxes share some area (touching edges do not count)."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def layout_problems(boxes: dict[str, Box], canvas: tuple[int, int] = POSTER_SIZE) -> list[str]:
    """What is wrong with a layout: a box outside the canvas, or two boxes that overlap."""
    w, h = canvas
    problems = [
        f"{name} {box} leaves the canvas"
        for name, box in boxes.items()
        if not (0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h)
    ]
    names = sorted(boxes)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if boxes_intersect(boxes[a], boxes[b]):
                problems.append(f"{a} {boxes[a]} overlaps {b} {boxes[b]}")
    return problems


# --- visit flood control --------------------------------------------------------------------
class TokenBuckets:
    """One token bucket per key (visitor id or client address), bounded in memory (the least
    recently seen keys are forgotten, ``shared.lru.LRU``).

    ``allow(key, t)`` takes a token at time ``t`` (seconds, monotonic or epoch) when one is
    left. A flood from one key is counted at most ``capacity`` + elapsed/refill times.
    """

    def __init__(self, capacity: int, refill_seconds: float, max_keys: int = 200_000):
        self.capacity = float(capacity)
        self.rate = 1.0 / refill_seconds if refill_seconds > 0 else float("inf")
        self.max_keys = max_keys
        self._buckets: LRU[str, list[float]] = LRU(max_keys)

    def allow(self, key: str | None, t: float) -> bool:
        if key is None or self.capacity <= 0:
            return self.capacity > 0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = [self.capacity, t]
            self._buckets.put(key, bucket)
        else:
            elapsed = max(0.0, t - bucket[1])
            bucket[0] = min(self.capacity, bucket[0] + elapsed * self.rate)
            bucket[1] = max(bucket[1], t)
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return True
        return False


@dataclass
class VisitLimits:
    """The three flood limits a visit must pass to be counted.

    * a returning visitor (their ``xp_vid`` cookie came back): the visitor's bucket;
    * a visitor without the cookie (``new_visitor``: every request of a cookie-less client
      looks new): the anonymous bucket of the client address;
    * every visit: the address bucket, high because one NAT address serves many buyers, but
      still a ceiling for a client that invents a new cookie on every request.
    """

    visitors: TokenBuckets
    anonymous: TokenBuckets
    addresses: TokenBuckets

    @classmethod
    def from_rules(cls, r: "ShareRules") -> "VisitLimits":
        return cls(
            TokenBuckets(r.visitor_burst, r.visitor_refill_seconds),
            TokenBuckets(r.anonymous_burst, r.anonymous_refill_seconds),
            TokenBuckets(r.address_burst, r.address_refill_seconds),
        )

    def allow(self, visit: dict, t: float) -> bool:
        address = visit.get("client")
        if visit.get("new_visitor") or not visit.get("visitor_id"):
            first = self.anonymous.allow(address, t) if address else True
        else:
            first = self.visitors.allow(visit["visitor_id"], t)
        return first and (self.addresses.allow(address, t) if address else True)


def admit_visits(
    visits: Iterable[dict], limits: VisitLimits, epoch: Callable[[dict], float]
) -> tuple[list[dict], int]:
    """Split a batch into counted visits and the number throttled (not counted)."""
    counted, throttled = [], 0
    for visit in visits:
        if limits.allow(visit, epoch(visit)):
            counted.append(visit)
        else:
            throttled += 1
    return counted, throttled


# --- stats ----------------------------------------------------------------------------------
def stats_day(instant: datetime, utc_offset_hours: int = 8) -> str:
    """The calendar day an instant falls on for stats (China Standard Time by default)."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(timezone(timedelta(hours=utc_offset_hours))).date().isoformat()


def conversion(orders: int, visits: int) -> float | None:
    return round(orders / visits, 4) if visits else None


# How a visit came: a poster's QR code scanned (the URL carries ``?src=qr``), the plain link
# opened, or a share code pasted and resolved. Stats count each apart.
VISIT_KIND_STAT = {"scan": "scans", "landing": "opens", "resolve": "pastes"}
KIND_STATS = ("scans", "opens", "pastes")


def visit_kind_stat(kind: str) -> str:
    """The stats field a visit of ``kind`` counts in (an unknown kind counts as an open)."""
    return VISIT_KIND_STAT.get(kind, "opens")


def assemble_stats(
    shop_id: int,
    visit_rows: Iterable[tuple],
    order_rows: Iterable[tuple],
    share_codes: dict[str, tuple[str, int]],
    kind_rows: Iterable[tuple] = (),
) -> dict:
    """Stats from grouped rows: ``visit_rows`` (day, share_id, visits, visitors),
    ``order_rows`` (day, share_id|None, orders, gmv_fen), ``kind_rows`` (day, share_id, kind,
    visits: scans, opens and pastes apart, ``visit_kind_stat``); ``share_codes`` share_id →
    (code, product_id). Orders without a share (shop number typed in) appear under share_id
    None."""
    by_day: dict[str, dict] = {}
    by_share: dict[str | None, dict] = {}

    def day_entry(day):
        return by_day.setdefault(
            day,
            {"day": day, "visits": 0, "visitors": 0, "orders": 0, "gmv_fen": 0}
            | dict.fromkeys(KIND_STATS, 0),
        )

    def share_entry(share_id):
        if share_id not in by_share:
            code, product_id = share_codes.get(share_id, (None, None)) if share_id else (None, None)
            by_share[share_id] = {
                "share_id": share_id,
                "code": code,
                "product_id": product_id,
                "visits": 0,
                "orders": 0,
                "gmv_fen": 0,
            } | dict.fromkeys(KIND_STATS, 0)
        return by_share[share_id]

    for day, share_id, visits, visitors in visit_rows:
        day_entry(day)["visits"] += int(visits)
        day_entry(day)["visitors"] += int(visitors)  # distinct per share and day
        share_entry(share_id)["visits"] += int(visits)
    for day, share_id, kind, visits in kind_rows:
        day_entry(day)[visit_kind_stat(kind)] += int(visits)
        share_entry(share_id)[visit_kind_stat(kind)] += int(visits)
    for day, share_id, orders, gmv in order_rows:
        day_entry(day)["orders"] += int(orders)
        day_entry(day)["gmv_fen"] += int(gmv or 0)
        share_entry(share_id)["orders"] += int(orders)
        share_entry(share_id)["gmv_fen"] += int(gmv or 0)
    days = [by_day[d] for d in sorted(by_day)]
    shares = sorted(
        by_share.values(), key=lambda s: (-s["visits"], -s["orders"], str(s["share_id"]))
    )
    for entry in days + shares:
        entry["conversion"] = conversion(entry["orders"], entry["visits"])
    totals = {
        "visits": sum(d["visits"] for d in days),
        "orders": sum(d["orders"] for d in days),
        "gmv_fen": sum(d["gmv_fen"] for d in days),
    } | {k: sum(d[k] for d in days) for k in KIND_STATS}
    totals["conversion"] = conversion(totals["orders"], totals["visits"])
    return {"shop_id": shop_id, "totals": totals, "by_day": days, "by_share": shares}


# --- last-click attribution -----------------------------------------------------------------
def visit_window_start(since_iso: str | None) -> datetime:
    """The first instant whose visits may attribute an order. The window is the caller's rule
    (orders owns ``attribution_window_days`` and passes ``now - window``); share has no window
    of its own, so a missing or malformed instant is a ValueError (422 at the entrypoint)."""
    if not since_iso or not isinstance(since_iso, str):
        raise ValueError("since_iso is required: the start of the caller's attribution window")
    instant = datetime.fromisoformat(since_iso.strip().replace("Z", "+00:00"))
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)
