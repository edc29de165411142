"""Command handlers of the identity service, one module per seam: ``codes`` (send and check a
one-time code) and ``sessions`` (start, rotate and end a session). They never commit."""
