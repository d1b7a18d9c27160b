"""The request rollups ClickHouse computes from raw inserts (006_request_rollup_views.sql): exact
sums per 1 s / 1 min / 1 h bucket, failure classes, the latency sketch of
`pipeline.storage.sketch`, and
identical rows for a redelivered message."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from pipeline.ingest.rows.requests import ROLLUP_FIELDS, SinkBatch
from pipeline.storage import sketch
from pipeline.storage.clickhouse import ClickHouseStore, migrate

_KEY = ("tenant", "endpoint_id", "autogroup_id", "bucket", "src_partition", "src_offset")


def ev(ts_ms: int, **over: object) -> dict[str, Any]:
    e: dict[str, Any] = {
        "tenant": "t", "endpoint_id": 1, "endpoint": "ep", "autogroup_id": 10, "worker_id": 5,
        "ts": ts_ms, "status": 200, "latency_ms": 100.0, "queue_ms": 2.0, "work_units": 1.0,
        "tokens_in": 3, "tokens_out": 4, "cold_start": False, "cold_start_ms": 0.0,
        "error_kind": "", "gpu_seconds": 0.5, "bytes_out": 10}
    e.update(over)
    return e


@pytest.fixture
def store(chdb_dsn: str) -> ClickHouseStore:
    s = ClickHouseStore(chdb_dsn, f"rollups_{uuid.uuid4().hex[:8]}")
    migrate(s)
    return s


def insert(store: ClickHouseStore, partition: int, offset: int,
           events: list[tuple[int, dict[str, Any]]]) -> None:
    batch = SinkBatch()
    batch.add_requests(partition, offset, events)
    for table, names, cols in batch.tables():
        store.insert(table, cols, names)


def rollups(store: ClickHouseStore, table: str, final: bool = False) -> list[dict[str, Any]]:
    names = (*_KEY, *ROLLUP_FIELDS)
    rows = store.rows(f"SELECT {', '.join(names)}, toUnixTimestamp(bucket) "
                      f"FROM {store.database}.{table} {'FINAL' if final else ''} "
                      f"ORDER BY bucket, src_offset")
    return [{**dict(zip(names, r, strict=False)), "bucket": r[-1]} for r in rows]


def test_second_minute_and_hour_rollups_sum_exactly(store: ClickHouseStore) -> None:
    base = 1_800_000_000_000 - 1_800_000_000_000 % 3_600_000
    insert(store, 2, 77, [
        (0, ev(base + 100)), (1, ev(base + 900, status=503, latency_ms=50.0)),
        (2, ev(base + 1500, status=429, cold_start=True, cold_start_ms=900.0)),
        (3, ev(base + 61_000, error_kind="timeout", work_units=2.5)),
        (4, ev(base + 62_000, latency_ms=0.0, error_kind="resource_exhausted"))])
    secs = rollups(store, "requests_1s")
    assert [r["bucket"] for r in secs] == [base // 1000 + d for d in (0, 1, 61, 62)]
    first = secs[0]
    assert (first["requests"], first["successes"], first["failures"], first["err_server"]) == (
        2, 1, 1, 1)
    assert (first["latency_min"], first["latency_max"], first["latency_sum"]) == (50.0, 100.0,
                                                                                 150.0)
    assert first["latency_hist"] == {sketch.bucket_of(100.0): 1, sketch.bucket_of(50.0): 1}
    minute0, minute1 = rollups(store, "requests_1m")
    assert minute0["requests"] == 3 and minute0["err_client"] == 1 and minute0["cold_starts"] == 1
    assert minute0["cold_start_ms_sum"] == 900.0 and minute0["gpu_seconds"] == 1.5
    assert minute0["tokens_in"] == 9 and minute0["tokens_out"] == 12 and minute0["bytes_out"] == 30
    assert minute1["err_timeout"] == 1 and minute1["err_resource"] == 1
    assert minute1["work_units"] == 3.5 and minute1["queue_ms_sum"] == 4.0
    assert minute1["latency_hist"] == {sketch.bucket_of(100.0): 1, sketch.ZERO_BUCKET: 1}
    (hour,) = rollups(store, "requests_1h")
    assert (hour["requests"], hour["successes"], hour["failures"]) == (5, 1, 4)
    assert sum(hour["latency_hist"].values()) == 5
    assert all((r["src_partition"], r["src_offset"]) == (2, 77) for r in [*secs, hour])


def test_sketch_buckets_match_the_python_rule(store: ClickHouseStore) -> None:
    latencies = [0.0, 0.001, 0.0011, 0.5, 1.0, 3.7, 99.99, 100.0, 1234.5678, 60_000.0]
    insert(store, 0, 1, [(i, ev(1_800_000_000_000, latency_ms=v))
                         for i, v in enumerate(latencies)])
    (sec,) = rollups(store, "requests_1s")
    expected: dict[int, int] = {}
    for v in latencies:
        expected[sketch.bucket_of(v)] = expected.get(sketch.bucket_of(v), 0) + 1
    assert sec["latency_hist"] == expected


def test_redelivered_message_collapses_to_one_row_per_key(store: ClickHouseStore) -> None:
    events = [(i, ev(1_800_000_000_000 + i * 10, latency_ms=float(i), autogroup_id=10 + i % 2))
              for i in range(50)]
    insert(store, 0, 5, events)
    insert(store, 0, 5, [(i, dict(e)) for i, e in events])  # the same message again
    insert(store, 0, 6, events[:3])  # the next message
    for table in ("requests_1s", "requests_1m", "requests_1h"):
        once = [r for r in rollups(store, table) if r["src_offset"] == 5]
        assert len(once) == 4  # two inserts × two autogroups, before FINAL
        assert once[0] == once[1] or once[0] == once[2]
        final = rollups(store, table, final=True)
        assert sum(r["requests"] for r in final) == 53
        assert {(r["autogroup_id"], r["src_offset"]) for r in final} == {
            (10, 5), (11, 5), (10, 6), (11, 6)}


def test_row_counters_count_every_rollup_row_written(store: ClickHouseStore) -> None:
    """007_rollup_row_counts.sql: per (tenant, endpoint, bucket), the rows ever written into the
    1m/1h rollups, a redelivered message's duplicates included; re-running the migrations does
    not backfill twice, and a backfill covers rows written before the counters existed."""
    minute = 1_800_000_000_000 // 60_000 * 60_000
    first = [(0, ev(minute)), (1, ev(minute + 61_000)), (2, ev(minute + 62_000))]
    insert(store, 0, 1, first)
    insert(store, 0, 1, first)  # redelivered
    insert(store, 1, 9, [(0, ev(minute + 1_000, autogroup_id=11))])

    def counters(table: str) -> dict[int, int]:
        return {int(b): int(n) for b, n in store.rows(
            f"SELECT toUnixTimestamp(bucket), sum(rows) FROM {store.database}.{table}_rows "
            f"GROUP BY bucket ORDER BY bucket")}

    m0 = minute // 1000
    assert counters("requests_1m") == {m0: 3, m0 + 60: 2}
    assert counters("requests_1h") == {m0 // 3600 * 3600: 3}
    migrate(store)
    assert counters("requests_1m") == {m0: 3, m0 + 60: 2}
    db = store.database
    store.command(f"DROP VIEW {db}.requests_1m_rows_mv")
    store.command(f"DROP TABLE {db}.requests_1m_rows")
    store.command(f"OPTIMIZE TABLE {db}.requests_1m FINAL")  # the duplicates merge away
    migrate(store)
    assert counters("requests_1m") == {m0: 2, m0 + 60: 1}


def test_input_bytes_and_cache_outcomes_per_minute(store: ClickHouseStore) -> None:
    """`requests_io_1m` (012_request_input_cache_1m.sql): Σ bytes_in, hits and misses per
    (minute, message) equal the raw rows' sums; a message reporting neither writes no row; a
    redelivery collapses under FINAL; the migration's backfill covers rows written before the
    view existed."""
    minute = 1_800_000_000_000 // 60_000 * 60_000
    io = [(0, ev(minute, bytes_in=100, cache="hit")), (1, ev(minute + 5_000, bytes_in=7)),
          (2, ev(minute + 6_000, cache="miss")), (3, ev(minute + 61_000, cache="hit"))]
    insert(store, 0, 1, io)
    insert(store, 0, 1, io)  # redelivered
    insert(store, 0, 2, [(0, ev(minute + 1_000))])  # neither field: no row
    db = store.database

    def per_minute(final: str = "FINAL") -> list[tuple[int, int, int, int, int]]:
        return [tuple(int(v) for v in r) for r in store.rows(
            f"SELECT toUnixTimestamp(bucket), src_offset, sum(bytes_in), sum(cache_hits), "
            f"sum(cache_misses) FROM {db}.requests_io_1m {final} "
            f"GROUP BY bucket, src_offset ORDER BY bucket, src_offset")]

    m0 = minute // 1000
    assert per_minute() == [(m0, 1, 107, 1, 1), (m0 + 60, 1, 0, 1, 0)]
    assert per_minute("") == [(m0, 1, 214, 2, 2), (m0 + 60, 1, 0, 2, 0)]  # before merging
    raw = store.rows(f"SELECT sum(bytes_in), countIf(cache = 'hit'), countIf(cache = 'miss') "
                     f"FROM {db}.requests_raw FINAL")
    total = store.rows(f"SELECT sum(bytes_in), sum(cache_hits), sum(cache_misses) "
                       f"FROM {db}.requests_io_1m FINAL")
    assert [tuple(int(v) for v in r) for r in total] == \
        [tuple(int(v) for v in r) for r in raw] == [(107, 2, 1)]
    store.command(f"DROP VIEW {db}.requests_io_1m_mv")
    store.command(f"DROP TABLE {db}.requests_io_1m")
    migrate(store)  # the backfill, from the raw rows
    assert per_minute("") == [(m0, 1, 107, 1, 1), (m0 + 60, 1, 0, 1, 0)]
    migrate(store)  # a start within the backfill's minutes: the same rows again, collapsed
    assert per_minute() == [(m0, 1, 107, 1, 1), (m0 + 60, 1, 0, 1, 0)]
    created = store.rows(f"SELECT metadata_modification_time FROM system.tables "
                         f"WHERE database = '{db}' AND name = 'requests_io_1m_mv'")
    assert len(created) == 1
