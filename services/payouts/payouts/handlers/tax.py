"""Income tax withheld from keepers' payouts (劳务报酬预扣, ``domain.labour_income_withholding``).

A withdrawal splits itself when it is asked for (``withdrawals.request``); a payout run's keeper
rows are split here, when the run opens them: the row keeps the gross (``amount_fen``) and the
tax (``withheld_fen``), the provider is sent the net, and the payout entry posts gross → net
paid + tax withheld. Suppliers are companies: nothing is withheld from them.
"""

from __future__ import annotations

from typing import Any

from payouts import domain
from payouts.domain import PayoutRules


def withhold_from_run_rows(rules: PayoutRules, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each new payout row with its ``withheld_fen`` (0 for suppliers, 0 when withholding is
    off)."""
    for row in rows:
        if row["party_kind"] == domain.KEEPER:
            row["withheld_fen"] = domain.labour_income_withholding(
                int(row["amount_fen"]), rules
            ).withheld_fen
        else:
            row["withheld_fen"] = 0
    return rows


def net_fen(row: dict[str, Any]) -> int:
    """What the provider is sent for a payout row: the gross minus the tax withheld."""
    return int(row["amount_fen"]) - int(row.get("withheld_fen") or 0)
