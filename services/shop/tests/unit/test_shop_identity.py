"""Credit score and real-name status come from the identity adapter, not from the client."""

from shop.identity import SandboxIdentityRecords, identity_records


def test_outside_test_mode_declared_values_are_ignored():
    records = identity_records({"XIAOPU_TEST_MODE": 0})
    assert records.record("13800138000", 999, True) == records.record("13800138000", None, None)
    assert records.record("13800138000", 999, True).credit_score == 0
    assert records.record("13800138000", 999, True).real_name_verified is False


def test_the_sandbox_in_test_mode_takes_the_declared_values():
    records = identity_records({"XIAOPU_TEST_MODE": 1})
    assert isinstance(records, SandboxIdentityRecords)
    found = records.record("13800138000", 720, True)
    assert (found.credit_score, found.real_name_verified) == (720, True)
