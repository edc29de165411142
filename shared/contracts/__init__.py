"""Versioned pydantic contracts: the data of every event (``events``) and the RPC payloads
each service accepts (``<service>.py``, owned by that service)."""
