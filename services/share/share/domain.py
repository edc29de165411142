"""The share rules of PRODUCT.md, in plain Python (no nameko, no SQLAlchemy)."""
