"""Reads of the payouts service and their serialisers: balances, a shop's earnings, monthly
statements, settled sales per shop (shop's level input), the books check, holds on accruals.
Every read of a shop's money is scoped by its ``shop_id`` (the gateway decides who may ask
for which shop)."""

from __future__ import annotations

from payouts.queries.balances import (  # noqa: F401
    KEEPER_ACCOUNTS,
    STATEMENT_HEADER,
    balances,
    check_books,
)
from payouts.queries.holds import (  # noqa: F401
    H,
    hold_dict,
    holds,
    order_holds,
)
from payouts.queries.keepers import (  # noqa: F401
    earnings,
    earnings_line,
    negative_balance,
    statement_csv,
)
from payouts.queries.payees import (  # noqa: F401
    payee,
    payout_history,
    payout_settings,
    tax_statement,
    withdrawals,
)
from payouts.queries.suppliers import (  # noqa: F401
    SUPPLIER_ACCOUNTS,
    SUPPLIER_HEADER,
    settled_sales,
    supplier_balance,
    supplier_line,
    supplier_statement_csv,
)
