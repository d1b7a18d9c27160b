"""Bisection finds exactly the items storage refuses alone, and says when the store is at fault."""

from __future__ import annotations

import math

import pytest

from pipeline.core.errors import StorageRefused, StorageUnavailable
from pipeline.ingest.isolate import is_store_wide, refused_leaves


class FakeStore:
    """Refuses any part holding a poisoned item; records what it stored."""

    def __init__(self, poisoned: set[int], code: int = 469) -> None:
        self.poisoned = poisoned
        self.code = code
        self.stored: set[int] = set()
        self.attempts = 0

    async def attempt(self, part) -> None:
        self.attempts += 1
        bad = [i for i in part if i in self.poisoned]
        if bad:
            raise StorageRefused(f"refused {bad[0]}", code=self.code)
        self.stored.update(part)


@pytest.mark.parametrize(("n", "poisoned"), [
    (1, {0}), (2, {1}), (7, {0, 6}), (1000, {3}), (1000, {0, 499, 500, 999}), (64, set(range(64))),
])
async def test_refused_leaves_are_exactly_the_poisoned(n, poisoned):
    store = FakeStore(poisoned)
    items = list(range(n))
    refused = await refused_leaves(items, store.attempt, StorageRefused("first", code=469))
    assert sorted(i for i, _ in refused) == sorted(poisoned)
    assert store.stored == set(items) - poisoned
    if len(poisoned) == 1:
        assert store.attempts <= 2 * math.ceil(math.log2(n)) + 1


async def test_unavailable_propagates():
    async def attempt(part):
        raise StorageUnavailable("gone")

    with pytest.raises(StorageUnavailable):
        await refused_leaves([1, 2, 3], attempt, StorageRefused("first"))


def test_store_wide():
    r = StorageRefused("x", code=469)
    t = StorageRefused("x", code=60)
    assert is_store_wide(3, [(0, r), (1, r), (2, r)])       # every message refused alone
    assert not is_store_wide(3, [(0, r), (2, r)])            # a data-dependent refusal
    assert not is_store_wide(1, [(0, r)])                    # one message, a data code
    assert is_store_wide(1, [(0, t)])                        # one message, UNKNOWN_TABLE
    assert not is_store_wide(0, [])
    assert is_store_wide(3, [(0, t)])                        # table restored mid-bisection
