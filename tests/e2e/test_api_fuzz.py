"""A bounded schemathesis run against a platform of its own (issue 13): every operation of the
OpenAPI document, fuzzed with a fixed seed, as a member, a supplier or the admin (the first role
the operation declares). It fails on any 5xx and on any answer the document does not declare:
status codes, content types and response bodies (schemathesis' own checks).

Bounded: ``XIAOPU_FUZZ_EXAMPLES`` examples per operation (default 25) — about two minutes. Its
own platform because the fuzzer moves the platform clock, suspends suppliers and runs
settlements, which would disturb the other end-to-end stories.
"""

from __future__ import annotations

import os
import random

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from benchmarks.common import platform_on_postgres

EXAMPLES = int(os.environ.get("XIAOPU_FUZZ_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_platform(tmp_path_factory):
    with platform_on_postgres(log_dir=tmp_path_factory.mktemp("fuzz-logs")) as ctx:
        yield ctx


@pytest.fixture(scope="module")
def tokens(fuzz_platform) -> dict[str, str]:
    url = fuzz_platform.url
    phone = f"139{random.Random(13).randint(10_000_000, 99_999_999)}"
    member = requests.post(
        f"{url}/api/v1/members",
        json={"nickname": "模糊", "phone": phone, "credit_score": 760, "real_name_verified": True},
        timeout=30,
    )
    assert member.status_code == 201, member.text
    supplier = requests.post(
        f"{url}/api/v1/suppliers",
        json={
            "name": "模糊测试供应商",
            "registered_capital_fen": 200_000_000,
            "general_taxpayer": True,
            "brand_authorization_levels": 1,
            "contact": {"phone": "021-5555"},
        },
        timeout=30,
    )
    assert supplier.status_code == 201, supplier.text
    return {
        "member": member.json()["token"],
        "supplier": supplier.json()["token"],
        "admin": fuzz_platform.admin_headers["Authorization"].split(" ", 1)[1],
    }


def role_of(operation) -> str | None:
    """The first role the operation declares ("roles: member, admin"), None for public ones."""
    description = operation.definition.raw.get("description") or ""
    if not description.startswith("roles:"):
        return None
    return description.removeprefix("roles:").split(",")[0].strip()


def fuzz(operation, mode: GenerationMode, headers: dict) -> list[str]:
    """Run ``EXAMPLES`` cases of one operation; the failures (with a curl line to repeat them)."""
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,  # the fixed seed: the same cases on every run
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report, don't minimise
    )
    def run(case):
        try:
            case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)
        except (
            Exception,
            BaseExceptionGroup,
        ) as exc:  # a schemathesis failure (group), or the request itself failed
            if len(failures) < 3:
                failures.append(
                    f"{operation.label} [{mode.value}]: {str(exc).strip()[:1500]}\n"
                    f"  {case.as_curl_command(headers=headers)[:1500]}"
                )

    try:
        run()
    except Unsatisfiable:  # nothing to vary (negative mode of an operation without inputs)
        pass
    return failures


@pytest.mark.timeout(1200)
def test_every_operation_answers_as_declared(fuzz_platform, tokens):
    schema = schemathesis.openapi.from_url(f"{fuzz_platform.url}/api/v1/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    for operation in operations:
        role = role_of(operation)
        headers = {"Authorization": f"Bearer {tokens[role]}"} if role else {}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += fuzz(operation, mode, headers)
    assert not failures, f"{len(failures)} failure(s):\n\n" + "\n\n".join(failures)
