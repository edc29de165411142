"""The payouts rules of PRODUCT.md, in plain Python (no nameko, no SQLAlchemy)."""
