"""Rows built from decoded events: raw request rows with failure classes, registry rows, and
identical rows for a redelivered message. The rollups are tested in
tests/integration/storage/test_rollup_views.py."""

from __future__ import annotations

from pipeline.ingest.rows.requests import (
    ROLLUP_FIELDS,
    TABLE_COLUMNS,
    RegistryCache,
    SinkBatch,
    classify,
)


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


def test_raw_rows_classify_failures() -> None:
    base = 1_800_000_000_000
    events = [(0, ev(base)), (1, ev(base + 900, status=503, latency_ms=50.0)),
              (2, ev(base + 1500, status=429)), (3, ev(base + 61_000, error_kind="timeout"))]
    batch = SinkBatch()
    batch.add_requests(2, 77, events)
    assert len(batch) == 4
    names = TABLE_COLUMNS["requests_raw"]
    rows = [dict(zip(names, r, strict=True)) for r in batch.raw_rows("requests_raw")]
    assert [(r["success"], r["error_kind"]) for r in rows] == [
        (True, ""), (False, "server"), (False, "client"), (False, "timeout")]
    assert [(r["src_partition"], r["src_offset"], r["src_index"]) for r in rows] == [
        (2, 77, 0), (2, 77, 1), (2, 77, 2), (2, 77, 3)]
    assert rows[1]["latency_ms"] == 50.0 and rows[3]["ts"] == base + 61_000
    assert [r[0] for r in batch.tables()] == ["endpoints", "autogroups", "requests_raw"]


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
                                      "cur_load": 0.0, "new_load": 7.0, "rej_load": 1.5,
                                      "max_perf": 5.0, "cur_perf": 1.0,
                                      "cur_capacity": 0.0, "max_capacity": 0.0,
                                      "num_requests_working": 0, "num_requests_recieved": 0,
                                      "error_msg": "", "gpu_util": 1.0, "gpu_mem_util": 2.0,
                                      "cpu_util": 3.0})])
    tables = {t: cols for t, _, cols in batch.tables()}
    assert set(tables) == {"heartbeats_raw", "endpoints", "autogroups"}
    assert tables["endpoints"] == [["t"], [1], ["ep"], [1000]]
    hb = dict(zip(TABLE_COLUMNS["heartbeats_raw"], tables["heartbeats_raw"], strict=True))
    assert hb["new_load"] == [7.0] and hb["rej_load"] == [1.5] and hb["max_perf"] == [5.0]
    assert len(ROLLUP_FIELDS) == 20


def _registry(batch: SinkBatch, cache: RegistryCache) -> dict[str, list[tuple]]:
    """The registry rows `batch.tables(cache)` writes, as row tuples, then marks them written
    (as `Sink.persist` does once the insert succeeded)."""
    tables = {t: list(zip(*cols, strict=True)) for t, _, cols in batch.tables(cache)
              if t in ("endpoints", "autogroups")}
    cache.written(*batch.registry_rows)
    return tables


def _batch(*events: dict) -> SinkBatch:
    batch = SinkBatch()
    batch.add_requests(0, 1, list(enumerate(events)))
    return batch


def test_registry_cache_writes_new_changed_and_stale_keys_only() -> None:
    base = 1_800_000_000_000
    cache = RegistryCache(refresh_ms=60_000)
    assert _registry(_batch(ev(base)), cache) == {
        "endpoints": [("t", 1, "ep", base)], "autogroups": [("t", 10, 1, base)]}
    # Same keys within the refresh interval: nothing to write.
    assert _registry(_batch(ev(base + 59_999)), cache) == {}
    # A refresh interval after the last write: last_seen is brought up to date.
    assert _registry(_batch(ev(base + 60_000)), cache) == {
        "endpoints": [("t", 1, "ep", base + 60_000)],
        "autogroups": [("t", 10, 1, base + 60_000)]}
    # A rename, and a rename back within the interval: both written (the newest name wins).
    assert _registry(_batch(ev(base + 61_000, endpoint="ep2")), cache) == {
        "endpoints": [("t", 1, "ep2", base + 61_000)]}
    assert _registry(_batch(ev(base + 62_000, endpoint="ep")), cache) == {
        "endpoints": [("t", 1, "ep", base + 62_000)]}
    assert _registry(_batch(ev(base + 63_000, endpoint="ep")), cache) == {}
    # An autogroup that moves to another endpoint and back.
    assert _registry(_batch(ev(base + 64_000, endpoint_id=2)), cache) == {
        "endpoints": [("t", 2, "ep", base + 64_000)], "autogroups": [("t", 10, 2, base + 64_000)]}
    assert _registry(_batch(ev(base + 65_000)), cache) == {
        "autogroups": [("t", 10, 1, base + 65_000)]}
    # Events without a name never displace the name, and are refreshed like any key.
    assert _registry(_batch(ev(base + 66_000, endpoint="")), cache) == {
        "endpoints": [("t", 1, "", base + 66_000)]}
    assert _registry(_batch(ev(base + 67_000, endpoint=""), ev(base + 67_500)), cache) == {}


def test_registry_cache_until_written_a_batch_writes_its_rows() -> None:
    """A batch built while the previous one is still being inserted writes the same rows again
    (harmless: ReplacingMergeTree); nothing is marked written before its insert succeeded."""
    base = 1_800_000_000_000
    cache = RegistryCache()
    first, second = _batch(ev(base)), _batch(ev(base + 1))
    rows_first = [t for t, _, _ in first.tables(cache)]
    rows_second = [t for t, _, _ in second.tables(cache)]
    assert rows_first == rows_second == ["endpoints", "autogroups", "requests_raw"]
    cache.written(*first.registry_rows)
    assert [t for t, _, _ in _batch(ev(base + 2)).tables(cache)] == ["requests_raw"]
