"""The orders service: owns carts, orders, payments, refunds and inquiries."""
