"""The payouts service: owns the commission ledger, settlements and payout runs."""
