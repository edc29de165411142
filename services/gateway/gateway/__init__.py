"""The gateway: the only HTTP door. A thin HTTP → RPC mapper with validation, auth and errors."""
