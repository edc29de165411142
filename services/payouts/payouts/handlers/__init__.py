"""Command handlers of the payouts service, one module per seam of the ledger:

* ``journal``     posting balanced entries (append-only, idempotent by ``entry_id``) and the
                  order facts row every event handler locks and merges into
* ``accrual``     ``order_paid`` / ``order_refunded`` / ``level_changed``: accrue, reverse,
                  re-price
* ``settlement``  ``order_received`` / ``order_completed`` (the settle signals) and the
                  settlement run
* ``payout_runs`` the two transactions of a payout run and the provider calls between them
* ``payees``      payee accounts of members and suppliers (checked against the identity
                  record, every change recorded)
* ``withdrawals`` a keeper's own payout request (requested → transferred → paid | failed,
                  retryable) and the keeper's payout mode (auto | manual)
* ``tax``         income tax withheld from keepers' payouts (劳务报酬)
* ``holds``       THE hold mechanism on an order's accrual (``refund_open``, ``fraud:<rule>``,
                  ``suspended``): placed and released with a decision; a held order neither
                  settles nor is paid
* ``paid``        ``order_paid``: the accrual and the fraud screening of a paid order in
                  one short transaction (its first event in four statements after the claim)
* ``fraud``       fraud rules and suspension on every paid order (holds through ``holds``),
                  the admin's clear / forfeit decisions
* ``refunds``     ``refund_requested`` / ``refund_decided``: the ``refund_open`` hold

Every handler is ``fn(uow, [rules,] command...)``: it works in the caller's unit of work and
never commits (the entrypoint's ``with self.db.unit_of_work()`` does). Reads are in
``payouts.queries``; the rules in ``payouts.domain``.
"""

from payouts.handlers import (
    accrual,
    fraud,
    holds,
    journal,
    paid,
    payees,
    payout_runs,
    refunds,
    settlement,
    tax,
    withdrawals,
)

__all__ = [
    "accrual",
    "fraud",
    "holds",
    "journal",
    "paid",
    "payees",
    "payout_runs",
    "refunds",
    "settlement",
    "tax",
    "withdrawals",
]
