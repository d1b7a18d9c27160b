"""`requests_raw` rows go to ClickHouse as a Native block built by `pipeline.storage.native`: its
column
types are the table's, and ClickHouse reads back exactly the values clickhouse-connect's own
column insert stores, edge values included."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from pipeline.ingest.rows.requests import REQUESTS_RAW_TYPES, TABLE_COLUMNS, SinkBatch
from pipeline.storage.clickhouse import ClickHouseStore, migrate
from pipeline.storage.native import NativeBlock

NAMES = TABLE_COLUMNS["requests_raw"]


def ev(**over: Any) -> dict[str, Any]:
    e: dict[str, Any] = {
        "tenant": "t", "endpoint_id": 1, "endpoint": "ep", "autogroup_id": 10, "worker_id": 5,
        "ts": 1_800_000_000_123, "status": 200, "latency_ms": 100.25, "queue_ms": 2.0,
        "work_units": 1.0, "tokens_in": 3, "tokens_out": 4, "cold_start": False,
        "cold_start_ms": 0.0, "error_kind": "", "gpu_seconds": 0.5, "bytes_out": 10}
    e.update(over)
    return e


EDGE_EVENTS = [
    ev(),
    ev(tenant="ténant-ü", id="é" * 100, status=599, error_kind="resource_exhausted"),
    ev(id="x" * 128, endpoint_id=2**53 - 1, autogroup_id=0, worker_id=2**53 - 1, status=100),
    ev(tokens_in=2**32 - 1, tokens_out=0, bytes_out=2**40, latency_ms=86_400_000.0,
       queue_ms=1e-300, work_units=1e12, gpu_seconds=0.1 + 0.2, cold_start=True,
       cold_start_ms=8500.5, status=404),
    ev(ts=1_799_999_999_999, latency_ms=0.0, tenant="t" * 64, id=""),
]


@pytest.fixture
def store(chdb_dsn: str) -> ClickHouseStore:
    s = ClickHouseStore(chdb_dsn, f"native_{uuid.uuid4().hex[:8]}")
    migrate(s)
    return s


def test_block_types_are_the_tables(store: ClickHouseStore) -> None:
    described = store.rows(f"DESCRIBE TABLE {store.database}.requests_raw")
    assert [(name, t) for name, t, *_ in described] == list(zip(NAMES, REQUESTS_RAW_TYPES,
                                                               strict=True))


def test_native_block_reads_back_like_a_column_insert(store: ClickHouseStore) -> None:
    batch = SinkBatch()
    batch.add_requests(3, 41, list(enumerate(EDGE_EVENTS)))
    batch.add_requests(65_535, 2**63 - 1, [(7, ev(id="last"))])
    block = {table: cols for table, _, cols in batch.tables()}["requests_raw"]
    assert isinstance(block, NativeBlock) and block.rows == 6
    store.insert("requests_raw", block, NAMES)

    twin = ClickHouseStore(store.dsn, f"{store.database}_twin")
    migrate(twin)
    columns = [list(c) for c in zip(*batch.raw_rows("requests_raw"), strict=True)]
    twin.insert("requests_raw", columns, NAMES)

    select = (f"SELECT {', '.join(NAMES)}, toUnixTimestamp64Milli(ts) FROM {{db}}.requests_raw "
              f"ORDER BY src_partition, src_offset, src_index")
    got = store.rows(select.format(db=store.database))
    assert got == twin.rows(select.format(db=twin.database))
    assert len(got) == 6
    first, edge = got[0], dict(zip((*NAMES, "ts_ms"), got[3], strict=True))
    assert first[-1] == 1_800_000_000_123 and first[NAMES.index("event_id")] == ""
    assert edge["tokens_in"] == 2**32 - 1 and edge["bytes_out"] == 2**40
    assert edge["gpu_seconds"] == 0.1 + 0.2 and edge["queue_ms"] == 1e-300
    assert edge["cold_start"] is True and edge["success"] is False
    assert edge["error_kind"] == "client"
    assert [r[NAMES.index("event_id")] for r in got] == ["", "é" * 100, "x" * 128, "", "",
                                                        "last"]
    assert got[1][NAMES.index("tenant")] == "ténant-ü"
    assert got[5][NAMES.index("src_offset")] == 2**63 - 1
    assert got[5][NAMES.index("src_partition")] == 65_535


def test_out_of_range_value_raises_before_any_buffer_grows() -> None:
    batch = SinkBatch()
    batch.add_requests(0, 0, [(0, ev())])
    before = batch.tables()
    with pytest.raises(OverflowError):
        batch.add_requests(0, 1, [(0, ev()), (1, ev(tokens_in=2**32))])
    assert batch.tables() == before and len(batch) == 1
