"""API key format, hashing and role ranks (pure parts of pipeline/storage/keys.py)."""

from __future__ import annotations

from pipeline.storage import keys


def test_parse_key() -> None:
    good = "vk_0123456789ab_" + "x" * 43
    assert keys.parse_key(good) == "0123456789ab"
    for bad in ("", "vk_nope", "vk_0123456789ab_short", "xx_0123456789ab_" + "x" * 43,
                "vk_0123456789a_" + "x" * 43, good + "_extra"):
        assert keys.parse_key(bad) is None


def test_hash_is_sha256_hex_and_differs_per_key() -> None:
    a, b = keys.hash_key("vk_a"), keys.hash_key("vk_b")
    assert len(a) == 64 and a != b and a == keys.hash_key("vk_a")


def test_role_ranks() -> None:
    assert keys.role_allows("superadmin", "admin") and keys.role_allows("admin", "reader")
    assert keys.role_allows("reader", "reader")
    assert not keys.role_allows("reader", "admin") and not keys.role_allows("admin", "superadmin")


def test_ingest_role_only_reports() -> None:
    for role in ("ingest", "admin", "superadmin"):
        assert keys.role_allows(role, "ingest")
    assert not keys.role_allows("reader", "ingest")
    for needed in ("reader", "admin", "superadmin"):
        assert not keys.role_allows("ingest", needed)
    assert "ingest" in keys.ROLES
