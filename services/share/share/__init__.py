"""The share service: owns shares, share codes, posters and visits."""
