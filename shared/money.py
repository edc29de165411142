"""Money is integer fen (分), rates are basis points. No floats anywhere near money."""

from __future__ import annotations

BPS_DENOMINATOR = 10_000


def apply_bps(amount_fen: int, bps: int) -> int:
    """``amount × bps / 10000`` rounded half-up to a whole fen (applied once per order line)."""
    if not isinstance(amount_fen, int) or not isinstance(bps, int):
        raise TypeError("money and rates are integers")
    if amount_fen < 0:
        return -apply_bps(-amount_fen, bps)
    return (amount_fen * bps * 2 + BPS_DENOMINATOR) // (2 * BPS_DENOMINATOR)


def prorate(part_fen: int, whole_fen: int, amount_fen: int) -> int:
    """``amount × part / whole`` rounded half-up (refund share of a commission)."""
    if whole_fen <= 0:
        return 0
    return (amount_fen * part_fen * 2 + whole_fen) // (2 * whole_fen)


def yuan(fen: int) -> str:
    """Display only: 1999 → '19.99'."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"
