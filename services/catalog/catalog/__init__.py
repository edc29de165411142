"""The catalog service: owns suppliers, products, categories and stock."""
