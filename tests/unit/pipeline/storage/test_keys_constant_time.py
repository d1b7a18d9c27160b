"""API keys are compared as hashes with `hmac.compare_digest` (constant time), whatever the
input; a key of the wrong shape never reaches storage."""

from __future__ import annotations

import hmac

from pipeline.storage import keys


class OneKeyStore:
    """Answers `_rows` with one stored key (no ClickHouse involved: `find_key` is pure on it)."""

    database = "db"

    def __init__(self, key: str) -> None:
        self.row = (keys.parse_key(key), "acme", "reader", "", 0, False, keys.hash_key(key))
        self.queries = 0

    def rows(self, sql, params=None, settings=None):
        self.queries += 1
        return [self.row] if params and params.get("k") == self.row[0] else []


def test_find_key_compares_hashes_in_constant_time(monkeypatch):
    key = "vk_0123456789ab_" + "s" * 43
    store = OneKeyStore(key)
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    assert keys.find_key(store, key) is not None
    forged = key[:-1] + "t"
    assert keys.find_key(store, forged) is None
    assert calls == [(keys.hash_key(key), keys.hash_key(key)),
                     (keys.hash_key(key), keys.hash_key(forged))]
    assert keys.find_key(store, "vk_nope") is None  # malformed: no lookup, no compare
    assert store.queries == 2 and len(calls) == 2
