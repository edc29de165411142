"""Fingerprints (issue 13): services exchange salted hashes of phones, addresses and visitor
ids, never the values; formatting never hides a match; another salt gives another hash."""

import pytest

from shared.fingerprints import DEVELOPMENT_SALT, Fingerprinter


def test_the_same_phone_written_differently_has_one_fingerprint():
    fp = Fingerprinter("salt")
    assert fp.phone("13912345678") == fp.phone("+86 139-1234-5678") == fp.phone("0086 13912345678")
    assert fp.phone("13912345678") != fp.phone("13912345679")
    assert "13912345678" not in (fp.phone("13912345678") or "")


def test_addresses_match_in_match_form():
    fp = Fingerprinter("salt")
    assert fp.address("杭州市西湖区文三路 1 号") == fp.address("杭州市西湖区文三路１号\u200b")
    assert fp.address("杭州市西湖区文三路 1 号") != fp.address("杭州市西湖区文三路 2 号")


def test_kinds_and_salts_separate_fingerprints_and_nothing_has_none():
    a, b = Fingerprinter("one"), Fingerprinter("two")
    assert a.phone("13912345678") != b.phone("13912345678")
    assert a.visitor("13912345678") != a.phone("13912345678")
    assert a.phone(None) is None and a.address("   ") is None


def test_production_refuses_to_run_without_a_salt():
    with pytest.raises(RuntimeError):
        Fingerprinter.from_config({"XIAOPU_ENV": "production"})
    dev = Fingerprinter.from_config({})
    assert dev.phone("13912345678") == Fingerprinter(DEVELOPMENT_SALT).phone("13912345678")
