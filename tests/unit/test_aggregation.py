"""Rows and rollups built from decoded request events: exact sums per bucket, failure classes,
and identical rows for a redelivered message."""

from __future__ import annotations

from pipeline import sketch
from pipeline.aggregation import ROLLUP_FIELDS, TABLE_COLUMNS, SinkBatch, classify


def ev(ts_ms: int, **over: object) -> dict:
    e = {"tenant": "t", "endpoint_id": 1, "endpoint": "ep", "autogroup_id": 10,
         "worker_id": 5, "ts": ts_ms, "status": 200, "latency_ms": 100.0, "queue_ms": 2.0,
         "work_units": 1.0, "tokens_in": 3, "tokens_out": 4, "cold_start": False,
         "cold_start_ms": 0.0, "error_kind": "", "gpu_seconds": 0.5, "bytes_out": 10}
    e.update(over)
    return e


def test_classify() -> None:
    assert classify(200, "") == "" and classify(302, "") == ""
    assert classify(404, "") == "client" and classify(503, "") == "server"
    assert classify(200, "timeout") == "timeout"


def rollups(batch: SinkBatch, table: str) -> list[dict]:
    names = TABLE_COLUMNS[table]
    return [dict(zip(names, row, strict=True)) for row in batch.rows[table]]


def test_second_minute_and_hour_rollups_sum_exactly() -> None:
    base = 1_800_000_000_000 - 1_800_000_000_000 % 3_600_000
    events = [(0, ev(base + 100)), (1, ev(base + 900, status=503, latency_ms=50.0)),
              (2, ev(base + 1500, status=429, cold_start=True, cold_start_ms=900.0)),
              (3, ev(base + 61_000, error_kind="timeout", work_units=2.5))]
    batch = SinkBatch()
    batch.add_requests(2, 77, events)
    assert len(batch) == 4 and len(batch.raw_rows("requests_raw")) == 4
    secs = rollups(batch, "requests_1s")
    assert [r["bucket"] for r in secs] == [base // 1000, base // 1000 + 1, base // 1000 + 61]
    first = secs[0]
    assert (first["requests"], first["successes"], first["failures"], first["err_server"]) == (
        2, 1, 1, 1)
    assert (first["latency_min"], first["latency_max"], first["latency_sum"]) == (50.0, 100.0,
                                                                                 150.0)
    assert first["latency_hist"] == {sketch.bucket_of(100.0): 1, sketch.bucket_of(50.0): 1}
    (minute0, minute1) = rollups(batch, "requests_1m")
    assert minute0["requests"] == 3 and minute0["err_client"] == 1 and minute0["cold_starts"] == 1
    assert minute0["cold_start_ms_sum"] == 900.0 and minute0["gpu_seconds"] == 1.5
    assert minute1["err_timeout"] == 1 and minute1["work_units"] == 2.5
    (hour,) = rollups(batch, "requests_1h")
    assert hour["requests"] == 4 and hour["successes"] == 1 and hour["failures"] == 3
    assert sum(hour["latency_hist"].values()) == 4
    assert all((r["src_partition"], r["src_offset"]) == (2, 77) for r in [*secs, hour])


def test_redelivered_message_yields_identical_rows() -> None:
    events = [(i, ev(1_800_000_000_000 + i * 10, latency_ms=float(i))) for i in range(50)]
    a, b = SinkBatch(), SinkBatch()
    a.add_requests(0, 5, events)
    b.add_requests(0, 5, [(i, dict(e)) for i, e in events])
    assert a.tables() == b.tables()


def test_registry_tables_and_heartbeats() -> None:
    batch = SinkBatch()
    batch.add_heartbeats(1, 3, [(0, {"tenant": "t", "endpoint_id": 1, "endpoint": "ep",
                                      "autogroup_id": 2, "id": 9, "ts": 1000, "loadtime": 1.0,
                                      "cur_load": 0.0, "max_perf": 5.0, "cur_perf": 1.0,
                                      "cur_capacity": 0.0, "max_capacity": 0.0,
                                      "num_requests_working": 0, "num_requests_recieved": 0,
                                      "error_msg": "", "gpu_util": 1.0, "gpu_mem_util": 2.0,
                                      "cpu_util": 3.0})])
    tables = {t: cols for t, _, cols in batch.tables()}
    assert set(tables) == {"heartbeats_raw", "endpoints", "autogroups"}
    assert tables["endpoints"] == [["t"], [1], ["ep"], [1000]]
    assert len(ROLLUP_FIELDS) == 20
