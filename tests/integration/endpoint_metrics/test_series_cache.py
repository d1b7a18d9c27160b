"""The endpoint-metrics series through the per-bucket cache
(query_api/endpoint_metrics/series_cache.py) on the
embedded ClickHouse: exact against the events written, re-reading exactly the buckets that
changed (new messages, late messages into compacted buckets), and exact but never cached for a
bucket holding a redelivered message."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pipeline.core.clock import row_version
from pipeline.ingest import compaction
from pipeline.ingest.rows.requests import SinkBatch
from pipeline.storage import sketch
from pipeline.storage.clickhouse import AsyncStore, migrate
from query_api.endpoint_metrics import store as ms
from query_api.endpoint_metrics.series_cache import SeriesCache
from query_api.entities import Scope

BASE = 1_800_000_000 - 1_800_000_000 % 3600  # an hour start, seconds
SCOPE = Scope("t", 1)
START, END = BASE, BASE + 1800


class Counting:
    """The store, counting bucket reads (`raw`, RowBinary) per call."""

    def __init__(self, store: AsyncStore) -> None:
        self.store, self.database, self.reads = store, store.database, 0

    async def rows(self, *a: Any, **kw: Any) -> Any:
        return await self.store.rows(*a, **kw)

    async def raw(self, *a: Any, **kw: Any) -> Any:
        self.reads += 1
        return await self.store.raw(*a, **kw)


@pytest.fixture
async def store(chdb_dsn: str) -> AsyncIterator[AsyncStore]:
    s = AsyncStore.open(chdb_dsn, f"series_{uuid.uuid4().hex[:8]}")
    await s.call(migrate)
    yield s
    s.close()


class Truth:
    """Events written so far (each Kafka position once), and the expected series."""

    def __init__(self) -> None:
        self.events: dict[tuple[int, int], list[dict[str, Any]]] = {}

    async def write(self, store: AsyncStore, partition: int, offset: int, minute: int,
                    latencies: list[float], autogroup: int = 10) -> None:
        events = [{"tenant": "t", "endpoint_id": 1, "endpoint": "ep", "autogroup_id": autogroup,
                   "worker_id": 3, "ts": (BASE + 60 * minute + i % 60) * 1000,
                   "status": 503 if i % 5 == 0 else 200, "latency_ms": lat, "queue_ms": 1.0,
                   "work_units": 1.0, "tokens_in": 1, "tokens_out": 2, "cold_start": False,
                   "cold_start_ms": 0.0, "error_kind": "", "gpu_seconds": 0.25, "bytes_out": 8}
                  for i, lat in enumerate(latencies)]
        batch = SinkBatch()
        batch.add_requests(partition, offset, list(enumerate(events)))
        for table, names, cols in batch.tables():
            await store.insert(table, cols, names)
        self.events[(partition, offset)] = events

    def per_minute(self, autogroup: int | None = None) -> dict[int, tuple[int, int]]:
        out: dict[int, tuple[int, int]] = {}
        for events in self.events.values():
            for e in events:
                if autogroup is None or e["autogroup_id"] == autogroup:
                    t = e["ts"] // 60_000 * 60
                    n, bad = out.get(t, (0, 0))
                    out[t] = (n + 1, bad + (e["status"] >= 500))
        return out

    def hist(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for events in self.events.values():
            for e in events:
                sketch.add(out, e["latency_ms"])
        return out


async def check(store: Any, cache: SeriesCache | None, truth: Truth,
                scope: Scope = SCOPE) -> None:
    points, total, hist = await ms.fetch_series(store, scope, START, END, 60, cache)
    expected = truth.per_minute(scope.autogroup_id)
    assert {t: (s.requests, s.failures) for t, s in points.items() if s.requests} == expected
    assert total.requests == sum(n for n, _ in expected.values())
    if scope.autogroup_id is None:
        assert hist == truth.hist()
        assert [total.p50, total.p95, total.p99] == sketch.quantiles(hist, (0.5, 0.95, 0.99))


async def test_only_changed_buckets_are_read_again_and_results_stay_exact(
        store: AsyncStore) -> None:
    truth = Truth()
    for offset, minute in enumerate((0, 1, 1, 3, 7)):
        await truth.write(store, 0, offset, minute, [10.0 + offset + i for i in range(40)],
                          autogroup=10 + offset % 2)
    cache, counting = SeriesCache(10_000), Counting(store)
    await check(counting, cache, truth)
    assert counting.reads == 1  # four buckets: read from their source rows at once
    await check(counting, cache, truth)
    assert counting.reads == 1  # nothing changed: the counters alone

    await truth.write(store, 0, 10, 3, [500.0] * 25)  # a new message into minute 3
    await check(counting, cache, truth)
    assert counting.reads == 2
    assert cache.scope(("t", 1, "requests_1m")).missing(
        {BASE + 180: truth_rows(truth, 3)}) == []

    for scope in (Scope("t", 1, 10), Scope("t", 1, 11)):  # autogroups: always from the source
        await check(counting, cache, truth, scope)


def truth_rows(truth: Truth, minute: int) -> int:
    """Rollup rows written into a minute: one per (message, autogroup) with events in it."""
    return sum(1 for events in truth.events.values()
               if any(e["ts"] // 60_000 == (BASE + 60 * minute) // 60 for e in events))


async def test_redelivered_bucket_is_exact_and_read_on_every_call(store: AsyncStore) -> None:
    truth = Truth()
    await truth.write(store, 0, 0, 2, [20.0] * 30)
    await truth.write(store, 0, 1, 4, [40.0] * 30)
    await truth.write(store, 0, 0, 2, [20.0] * 30)  # redelivered: identical rows, same key
    cache, counting = SeriesCache(10_000), Counting(store)
    for calls in range(1, 4):
        await check(counting, cache, truth)
        assert counting.reads == calls  # minute 2's counter (2) never equals its 1 distinct row
    assert cache.scope(("t", 1, "requests_1m")).missing({BASE + 120: 2, BASE + 240: 1}) == [
        BASE + 120]


async def test_cold_calls_use_current_compacted_rows_and_see_late_messages(
        store: AsyncStore) -> None:
    truth = Truth()
    for offset in range(24):  # 20 minutes: more than the direct-read limit of 8
        await truth.write(store, 1, offset, offset % 20, [5.0 * (offset + 1)] * 20)
    await store.call(lambda s: compaction.compact(s, "requests_1m", START, END,
                                                           row_version(time.time())))
    cache, counting = SeriesCache(10_000), Counting(store)
    await check(counting, cache, truth)
    # every bucket from its (current) compacted row; none is recent enough to be read from the
    # source alongside (the window ends 10 minutes after the last one)
    assert counting.reads == 1

    await truth.write(store, 1, 50, 0, [900.0] * 7)  # late, into a compacted minute
    await check(counting, cache, truth)
    assert counting.reads == 2
    cache.clear()  # a first call again: minute 0's compacted row is stale, read from source
    await check(counting, cache, truth)
    assert counting.reads == 4


async def test_cold_call_reads_buckets_the_compactor_has_not_reached_alongside(
        store: AsyncStore) -> None:
    truth = Truth()
    for offset in range(12):
        await truth.write(store, 1, offset, offset, [7.0] * 10)
    await store.call(lambda s: compaction.compact(s, "requests_1m", START, END,
                                                           row_version(time.time())))
    await truth.write(store, 1, 12, 29, [8.0] * 10)  # the window's last minute, not compacted
    counting = Counting(store)
    await check(counting, SeriesCache(10_000), truth)
    assert counting.reads == 2  # compacted rows and the newest minute's source rows, together


async def test_without_a_cache_every_call_reads(store: AsyncStore) -> None:
    truth = Truth()
    await truth.write(store, 0, 0, 5, [1.0, 2.0, 3.0])
    counting = Counting(store)
    for calls in (1, 2):
        await check(counting, None, truth)
        assert counting.reads == calls
    await check(counting, SeriesCache(0), truth)
    assert counting.reads == 3
