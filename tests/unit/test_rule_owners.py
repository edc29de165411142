"""One owner per rule (issue 11): a rule's configuration key lives in exactly one service's
``config.yml`` RULES block. A service that needs another's rule gets it in the event or the RPC
answer (as ``level_changed`` carries ``bonus_bps``) — never by reading its own copy, which is how
``XIAOPU_LEVEL_BONUS_BPS_SENIOR=80`` once made shop show 80 bps while payouts paid 50.

Two checks: the same environment variable in two services' RULES; and the same rule under two
names, found with a small list of rule concepts (regexes over the RULES keys)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ENV_VAR = re.compile(r"\$\{([A-Za-z0-9_]+):")

# Rules that more than one service needs, and so are tempting to configure twice. Each regex
# matches the RULES key(s) of one PRODUCT.md rule, whatever a service chose to call it.
CONCEPTS = {
    "after-sales window (orders completes, payouts settles)": r"after_sales",
    "keeper level commission bonus (shop shows, payouts pays)": r"level_bonus",
    "share attribution window (orders attributes, share looks back)": r"attribution_window",
    "unpaid order expiry (orders expires, catalog holds stock)": r"reservation_ttl|unpaid_expiry",
    "minimum payout": r"min_payout",
    "auto-confirm after shipping": r"auto_confirm",
    "products per shop": r"max_products",
}


def rules_by_service() -> dict[str, dict[str, str]]:
    """``{service: {rule key: raw value}}`` from every ``services/*/*/config.yml`` RULES block
    (the raw ``${VAR:default}`` text, not expanded)."""
    found = {}
    for path in sorted(ROOT.glob("services/*/*/config.yml")):
        # BaseLoader: every value as its raw text (nameko teaches SafeLoader to expand ${VAR})
        config = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader) or {}
        rules = config.get("RULES")
        if rules:
            found[path.parent.name] = {str(k): str(v) for k, v in rules.items()}
    return found


def test_the_rules_blocks_are_found():
    services = rules_by_service()
    assert {"catalog", "shop", "share", "orders", "payouts"} <= set(services), services.keys()
    for service, rules in services.items():
        for key, raw in rules.items():
            assert ENV_VAR.search(raw), f"{service} rule {key}: {raw!r} names no variable"


def test_no_environment_variable_sets_rules_of_two_services():
    readers = defaultdict(set)
    for service, rules in rules_by_service().items():
        for key, raw in rules.items():
            for var in ENV_VAR.findall(raw):
                readers[var].add(f"{service}.{key}")
    shared = {var: sorted(keys) for var, keys in readers.items() if len(keys) > 1}
    assert not shared, f"one variable, several owners (keep it in one service): {shared}"


def test_no_rule_is_configured_in_two_services_under_different_names():
    services = rules_by_service()
    twice = {}
    for concept, pattern in CONCEPTS.items():
        owners = {
            service: sorted(k for k in rules if re.search(pattern, k))
            for service, rules in services.items()
        }
        owners = {service: keys for service, keys in owners.items() if keys}
        assert owners, f"no service configures {concept!r} any more: update CONCEPTS"
        if len(owners) > 1:
            twice[concept] = owners
    assert not twice, f"one rule, several owners (keep it in one service): {twice}"
