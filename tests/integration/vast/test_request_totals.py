"""`totreqs` over days of history through the per-day cache (query_api/vast/totals_store.py) on the
embedded ClickHouse: exact against the events written, reading only the days that changed
(new messages, late messages into old days), exact and re-read on every call for a day holding
a redelivered message, and the retention edge read afresh every call."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pipeline.ingest.rows.requests import SinkBatch
from pipeline.storage.clickhouse import AsyncStore, migrate
from query_api.entities import Scope
from query_api.vast.totals_store import DAY, RequestTotals, total_requests

BASE = 1_800_000_000 - 1_800_000_000 % DAY  # a UTC day start, seconds
SCOPE = Scope("t", 1)
NOW = BASE + 6 * DAY + 3600


class Counting:
    """The store, counting the reads of 1h rollup rows (FINAL) per call."""

    def __init__(self, store: AsyncStore) -> None:
        self.store, self.database, self.reads = store, store.database, 0
        self.sql: list[str] = []

    async def rows(self, sql: str, *a: Any, **kw: Any) -> Any:
        if "requests_1h FINAL" in sql:
            self.reads += 1
            self.sql.append(sql)
        return await self.store.rows(sql, *a, **kw)


@pytest.fixture
async def store(chdb_dsn: str) -> AsyncIterator[AsyncStore]:
    s = AsyncStore.open(chdb_dsn, f"totals_{uuid.uuid4().hex[:8]}")
    await s.call(migrate)
    yield s
    s.close()


class Truth:
    """Events written so far (each Kafka position once)."""

    def __init__(self) -> None:
        self.events: dict[tuple[int, int], list[dict[str, Any]]] = {}

    async def write(self, store: AsyncStore, offset: int, day: int, n: int,
                    endpoint: int = 1, hour: int = 5) -> None:
        events = [{"tenant": "t", "endpoint_id": endpoint, "endpoint": "ep",
                   "autogroup_id": 10 + i % 2, "worker_id": 3,
                   "ts": (BASE + day * DAY + hour * 3600 + i) * 1000, "status": 200,
                   "latency_ms": 5.0, "queue_ms": 1.0, "work_units": 1.0, "tokens_in": 1,
                   "tokens_out": 2, "cold_start": False, "cold_start_ms": 0.0,
                   "error_kind": "", "gpu_seconds": 0.25, "bytes_out": 8}
                  for i in range(n)]
        batch = SinkBatch()
        batch.add_requests(0, offset, list(enumerate(events)))
        for table, names, cols in batch.tables():
            await store.insert(table, cols, names)
        self.events[(0, offset)] = events

    def total(self, *, endpoint: int = 1, before: int | None = None,
              autogroup: int | None = None) -> int:
        return sum(1 for events in self.events.values() for e in events
                   if e["endpoint_id"] == endpoint
                   and (before is None or e["ts"] < before * 1000)
                   and (autogroup is None or e["autogroup_id"] == autogroup))


async def _total(store: Any, totals: RequestTotals | None, *, before_day: int | None = None,
                 scope: Scope = SCOPE, retention_days: int | None = 400) -> int:
    return await total_requests(store, scope, totals, before_day=before_day, now=NOW,
                                retention_days=retention_days)


async def test_closed_days_are_read_once_then_kept(store: AsyncStore) -> None:
    truth = Truth()
    for day in range(5):
        for k in range(3):  # three messages a day, in two hours
            await truth.write(store, day * 10 + k, day, 7 + k, hour=5 + k % 2)
    await truth.write(store, 99, 1, 11, endpoint=2)  # another endpoint does not count
    totals = RequestTotals()
    counting = Counting(store)
    assert await _total(counting, totals) == truth.total() == 5 * (7 + 8 + 9)
    assert counting.reads == 1  # every day in one read
    counting.sql.clear()
    assert await _total(counting, totals) == truth.total()
    # nothing changed: the counters, and only the rows beyond the retention edge (none)
    assert len(counting.sql) == 1 and "bucket >= " not in counting.sql[0]
    # a new message today and a late one into day 1: those two days are read, the rest kept
    await truth.write(store, 100, 4, 5)
    await truth.write(store, 101, 1, 4, hour=23)
    counting.reads = 0
    assert await _total(counting, totals) == truth.total() == 5 * 24 + 9
    assert counting.reads == 1
    read = counting.sql[-1]
    assert read.count("bucket >= ") == 2
    assert f"bucket >= toDateTime({BASE + DAY}, 'UTC')" in read
    assert f"bucket >= toDateTime({BASE + 4 * DAY}, 'UTC')" in read
    # the same figure without the cache (the direct read of every 1h row)
    assert await _total(store, None) == truth.total()


async def test_redelivered_message_counts_once_and_its_day_is_read_every_call(
        store: AsyncStore) -> None:
    truth = Truth()
    for day in range(3):
        await truth.write(store, day, day, 10)
    totals = RequestTotals()
    counting = Counting(store)
    assert await _total(counting, totals) == 30
    await truth.write(store, 1, 1, 10)  # the same position again: a redelivery
    for _ in range(2):
        counting.sql.clear()
        assert await _total(counting, totals) == truth.total() == 30
        assert len(counting.sql) == 1
        assert counting.sql[0].count("bucket >= ") == 1
        assert f"bucket >= toDateTime({BASE + DAY}, 'UTC')" in counting.sql[0]


async def test_days_before_a_day_and_autogroups(store: AsyncStore) -> None:
    truth = Truth()
    for day in range(4):
        await truth.write(store, day, day, 6 + day)
    totals = RequestTotals()
    assert await _total(store, totals) == truth.total()
    for day in range(5):
        assert await _total(store, totals, before_day=BASE + day * DAY) == \
            truth.total(before=BASE + day * DAY)
    ag = Scope("t", 1, 11)
    assert await _total(store, totals, scope=ag) == truth.total(autogroup=11) == 3 + 3 + 4 + 4
    assert await _total(store, totals) == truth.total()  # the endpoint's days unaffected


async def test_days_at_the_retention_edge_are_read_every_call(store: AsyncStore) -> None:
    truth = Truth()
    for day in range(6):
        await truth.write(store, day, day, 5)
    totals = RequestTotals()
    counting = Counting(store)
    # 4 days kept: the horizon is day 2, and days before day 4 are within its margin
    for _ in range(2):
        counting.sql.clear()
        assert await _total(counting, totals, retention_days=4) == truth.total() == 30
        assert f"bucket < toDateTime({BASE + 4 * DAY}, 'UTC')" in counting.sql[-1]
    assert set(totals.days("t", 1)) == {BASE + 4 * DAY, BASE + 5 * DAY}
