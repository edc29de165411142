"""The orders service: owns carts, orders, payments and refunds."""
