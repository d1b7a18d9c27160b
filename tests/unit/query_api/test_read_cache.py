"""`ReadCache`: identical concurrent reads computed once; answers reused only for the same key,
within the freshness bound (monotonic) and, for reads at an instant, for instants in
[computed instant, computed instant + bound]; errors never kept."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.core.clock import ManualClock
from pipeline.core.telemetry import Telemetry
from query_api.read_cache import ReadCache


class Counting:
    """A read whose answer names its key and how many times it ran; it waits on `gate`."""

    def __init__(self) -> None:
        self.calls: list[object] = []
        self.gate = asyncio.Event()

    def read(self, key: object):  # type: ignore[no-untyped-def]
        async def compute() -> tuple[object, int]:
            self.calls.append(key)
            await self.gate.wait()
            return key, len(self.calls)
        return compute


def _counts(t: Telemetry, cache: str) -> dict[str, float]:
    return {o: t.value("vitals_api_read_cache_total", cache=cache, outcome=o)
            for o in ("computed", "joined", "hit")}


async def test_identical_concurrent_reads_run_once_distinct_keys_apart():
    clock, tel, r = ManualClock(100.0), Telemetry(), Counting()
    cache = ReadCache(0.25, telemetry=tel, monotonic=clock)
    keys = [("acme", 11, "reqrate"), ("other", 11, "reqrate"), ("acme", 11, "curload")]
    calls = [cache.get("stats", k, r.read(k)) for k in keys for _ in range(10)]
    pending = asyncio.gather(*calls)
    await asyncio.sleep(0)
    r.gate.set()
    answers = await pending
    assert r.calls == keys  # one computation per tenant and parameter set
    assert answers == [(k, n) for n, k in enumerate(keys, 1) for _ in range(10)]
    assert _counts(tel, "stats") == {"computed": 3, "joined": 27, "hit": 0}


async def test_answer_reused_within_bound_then_recomputed():
    clock, tel, r = ManualClock(100.0), Telemetry(), Counting()
    r.gate.set()
    cache = ReadCache(0.25, telemetry=tel, monotonic=clock)
    assert await cache.get("s", "k", r.read("k")) == ("k", 1)
    clock.t += 0.125
    assert await cache.get("s", "k", r.read("k")) == ("k", 1)  # young: reused as is
    clock.t += 0.125
    assert await cache.get("s", "k", r.read("k")) == ("k", 1)  # at the bound: reused
    clock.t += 0.001
    assert await cache.get("s", "k", r.read("k")) == ("k", 3)  # past it: computed again
    # (the call at the bound started a refresh, "k" 2, that had not landed yet)
    assert _counts(tel, "s") == {"computed": 2, "joined": 0, "hit": 2}
    assert tel.value("vitals_api_read_cache_total", cache="s", outcome="refreshed") == 1


async def test_refresh_ahead_replaces_the_answer_without_making_callers_wait():
    clock, tel, r = ManualClock(100.0), Telemetry(), Counting()
    cache = ReadCache(1.0, telemetry=tel, monotonic=clock)
    first = asyncio.create_task(cache.get("s", "k", r.read("k"), instant=10.0))
    await asyncio.sleep(0)
    r.gate.set()
    assert await first == ("k", 1)
    r.gate.clear()  # the refresh will hang until released
    clock.t += 0.6  # past half the bound
    assert await cache.get("s", "k", r.read("k"), instant=10.6) == ("k", 1)  # not waiting
    assert await cache.get("s", "k", r.read("k"), instant=10.7) == ("k", 1)  # one refresh
    await asyncio.sleep(0)
    assert len(r.calls) == 2
    r.gate.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    clock.t += 0.1
    # the refreshed answer was computed for instant 10.6: never served for an earlier one
    assert await cache.get("s", "k", r.read("k"), instant=10.65) == ("k", 2)
    assert await cache.get("s", "k", r.read("k"), instant=10.5) == ("k", 3)
    assert _counts(tel, "s") == {"computed": 2, "joined": 0, "hit": 3}


async def test_instant_reads_never_served_for_an_earlier_or_far_instant():
    clock, r = ManualClock(100.0), Counting()
    r.gate.set()
    cache = ReadCache(0.25, monotonic=clock)
    at = 1_700_000_000.5
    assert await cache.get("s", "k", r.read("k"), instant=at) == ("k", 1)
    assert await cache.get("s", "k", r.read("k"), instant=at) == ("k", 1)
    assert await cache.get("s", "k", r.read("k"), instant=at + 0.25) == ("k", 1)
    # an earlier instant, or one past the bound, is computed for itself (and replaces it)
    assert await cache.get("s", "k", r.read("k"), instant=at - 0.001) == ("k", 2)
    assert await cache.get("s", "k", r.read("k"), instant=at + 0.3) == ("k", 3)
    assert await cache.get("s", "k", r.read("k"), instant=at + 0.3) == ("k", 3)


async def test_errors_reach_every_waiter_and_are_not_kept():
    clock = ManualClock(100.0)
    cache = ReadCache(10.0, monotonic=clock)
    gate = asyncio.Event()
    runs = 0

    async def failing() -> int:
        nonlocal runs
        runs += 1
        await gate.wait()
        raise LookupError("unknown endpoint")

    waiters = asyncio.gather(*(cache.get("s", "k", failing) for _ in range(3)),
                             return_exceptions=True)
    await asyncio.sleep(0)
    gate.set()
    assert [type(e) for e in await waiters] == [LookupError] * 3
    assert runs == 1

    async def found() -> int:
        return 7

    assert await cache.get("s", "k", found) == 7  # the next call computes again


async def test_a_caller_going_away_does_not_cancel_the_shared_read():
    clock, r = ManualClock(100.0), Counting()
    cache = ReadCache(1.0, monotonic=clock)
    first = asyncio.create_task(cache.get("s", "k", r.read("k")))
    await asyncio.sleep(0)
    second = asyncio.create_task(cache.get("s", "k", r.read("k")))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    r.gate.set()
    assert await second == ("k", 1)
    assert r.calls == ["k"]


async def test_zero_bound_shares_nothing():
    clock, r = ManualClock(100.0), Counting()
    r.gate.set()
    cache = ReadCache(0, monotonic=clock)
    answers = await asyncio.gather(*(cache.get("s", "k", r.read("k")) for _ in range(3)))
    assert sorted(answers) == [("k", 1), ("k", 2), ("k", 3)]


async def test_without_reuse_only_computations_in_flight_are_shared():
    clock, r = ManualClock(100.0), Counting()
    cache = ReadCache(1.0, monotonic=clock)
    pending = asyncio.gather(*(cache.get("s", "k", r.read("k"), reuse=False) for _ in range(3)))
    await asyncio.sleep(0)
    r.gate.set()
    assert await pending == [("k", 1)] * 3
    assert await cache.get("s", "k", r.read("k"), reuse=False) == ("k", 2)
