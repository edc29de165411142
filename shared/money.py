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


def allocate(amount_fen: int, weights: list[int]) -> list[int]:
    """Split ``amount_fen`` in proportion to ``weights`` to the fen, by largest remainder: each
    share is ``floor(amount × w / Σw)``, the fen left over go one each to the largest
    fractional parts (ties: the earlier weight). Shares sum exactly to ``amount_fen``; with
    ``0 <= amount <= Σw`` no share exceeds its weight. All zero weights: nothing allocated."""
    if any(not isinstance(w, int) or w < 0 for w in weights) or not isinstance(amount_fen, int):
        raise ValueError("weights are non-negative integers and the amount an integer")
    total = sum(weights)
    if total == 0:
        return [0] * len(weights)
    shares = [amount_fen * w // total for w in weights]
    remainders = [amount_fen * w % total for w in weights]
    left = amount_fen - sum(shares)
    for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        shares[i] += 1
    return shares
