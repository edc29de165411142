"""Rules from configuration: each service's ``RULES:`` block (config.yml, ``${VAR:default}``)
read into a frozen dataclass whose field defaults are the PRODUCT.md defaults.

    @dataclass(frozen=True)
    class ShopRules(ConfiguredRules):
        max_products_per_shop: int = 1000
        forbidden_name_words: tuple[str, ...] = ("旗舰", "官方")

    ShopRules.from_config(config)      # the service's whole config, or just its RULES mapping

Values arrive as strings from the environment or as YAML scalars; each is converted by the
field's annotation (int, float, bool, str, tuple of words, mapping of name=int). An empty value
keeps the default. A rule's key lives in ONE service's config (tests/unit/test_rule_owners.py).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

R = TypeVar("R", bound="ConfiguredRules")


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def as_words(value: Any) -> tuple[str, ...]:
    """``"a,b, c"`` or a YAML list → ``("a", "b", "c")``."""
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(v.strip() for v in str(value).split(",") if v.strip())


def as_int_mapping(value: Any) -> dict[str, int]:
    """``{"food_health": 2000000}`` or, from the environment, ``"food_health=2000000,x=1"``."""
    if isinstance(value, Mapping):
        return {str(k): int(v) for k, v in value.items()}
    out: dict[str, int] = {}
    for part in str(value).split(","):
        if part.strip():
            key, _, amount = part.partition("=")
            out[key.strip()] = int(amount)
    return out


def _convert(kind: Any, raw: Any) -> Any:
    origin = typing.get_origin(kind) or kind
    if origin is bool:
        return as_bool(raw)
    if origin is int:
        return int(raw)
    if origin is float:
        return float(raw)
    if origin is tuple:
        return as_words(raw)
    if origin in (dict, Mapping, typing.get_origin(Mapping[str, int])):
        return as_int_mapping(raw)
    return str(raw)


_HINTS: dict[type, dict[str, Any]] = {}


def _type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints`` of a rules class, once: it evaluates every annotation string
    again on each call, which made reading the rules a large part of a cheap event handler."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


class ConfiguredRules:
    """Base of every service's rules dataclass (see the module docstring)."""

    @classmethod
    def from_config(cls: type[R], config: Mapping[str, Any] | None) -> R:
        values: Mapping[str, Any] = config or {}
        if isinstance(values.get("RULES"), Mapping):  # the whole service config
            values = values["RULES"]
        hints = _type_hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            raw = values.get(f.name)
            if raw is None or raw == "":
                continue
            try:
                kwargs[f.name] = _convert(hints[f.name], raw)
            except (TypeError, ValueError) as exc:
                raise SystemExit(
                    f"configuration: rule {f.name}={raw!r} is not a valid {hints[f.name]}"
                ) from exc
        return cls(**kwargs)
