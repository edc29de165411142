"""The identity service: sign-in by phone and one-time code, refresh tokens, the SMS adapter."""
