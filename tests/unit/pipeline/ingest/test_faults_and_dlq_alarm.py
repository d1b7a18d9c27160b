"""Fault-spec parsing, the injector's counting, the DLQ alarm window, batch rollback."""

from __future__ import annotations

import pytest

from pipeline.core.faults import FaultInjector, FaultSpec, parse_fault
from pipeline.core.settings import Settings, SettingsError
from pipeline.ingest.dlq_alert import DlqAlarm
from pipeline.ingest.rows.requests import SinkBatch


def test_parse_fault():
    assert parse_fault("after_insert:3") == FaultSpec("after_insert", 3)
    assert parse_fault("rebalance") == FaultSpec("rebalance", 1)
    with pytest.raises(ValueError, match="allowed points are before_insert, after_insert"):
        parse_fault("sometimes:1")
    with pytest.raises(ValueError, match="must be >= 1"):
        parse_fault("after_commit:0")


def test_settings_read_fault_and_alert_ratio():
    s = Settings.from_env({"VITALS_FAULT": "before_insert:2", "VITALS_DLQ_ALERT_RATIO": "0.2"})
    assert s.fault == FaultSpec("before_insert", 2)
    assert s.dlq_alert_ratio == 0.2
    assert Settings.from_env({}).fault is None
    with pytest.raises(SettingsError, match="VITALS_FAULT='x:1'"):
        Settings.from_env({"VITALS_FAULT": "x:1"})
    with pytest.raises(SettingsError, match="must be <= 1"):
        Settings.from_env({"VITALS_DLQ_ALERT_RATIO": "1.5"})


def test_injector_kills_at_the_nth_arrival_only():
    kills = []
    fi = FaultInjector(FaultSpec("after_insert", 3), kill=lambda: kills.append(dict(fi.counts)))
    for _ in range(5):
        fi.hit("before_insert")
        armed = fi.armed("after_insert")
        fi.hit("after_insert")
        assert armed == (fi.counts["after_insert"] == 3)
    assert kills == [{"before_insert": 3, "after_insert": 3}]


def test_dlq_alarm_raises_above_ratio_and_clears_when_window_slides():
    now = [1000.0]
    alarm = DlqAlarm(ratio=0.1, window_s=10, min_events=20, clock=lambda: now[0])
    assert alarm.record(10, 5) is None          # 50 % but only 10 events: below the minimum
    assert alarm.record(10, 0) is True          # 5 of 20 = 25 % > 10 %
    assert alarm.raised and alarm.ratio == 0.25
    now[0] += 5
    assert alarm.record(100, 0) is False        # 5 of 120 ≈ 4 %
    now[0] += 6                                 # the first slot leaves the window
    assert alarm.record(10, 10) is None         # 10 of 110 ≈ 9 %: still under
    assert (alarm.seen, alarm.dead) == (110, 10)
    assert alarm.record(5, 5) is True           # 15 of 115 ≈ 13 %


def test_rollback_drops_half_built_rows():
    batch = SinkBatch()
    ok = {"tenant": "t", "endpoint_id": 1, "autogroup_id": 0, "ts": 1_000, "status": 200,
          "error_kind": "", "cold_start": False, "worker_id": 0, "latency_ms": 1.0,
          "queue_ms": 0.0, "work_units": 1.0, "tokens_in": 0, "tokens_out": 0,
          "cold_start_ms": 0.0, "gpu_seconds": 0.0, "bytes_out": 0, "endpoint": ""}
    batch.add_requests(0, 0, [(0, ok)])
    before = {t: list(r) for t, r in batch.rows.items()}
    raw_before = batch.raw_rows("requests_raw")
    mark = batch.checkpoint()
    with pytest.raises(KeyError):
        batch.add_requests(0, 1, [(0, {**ok, "endpoint_id": 2}), (1, {"tenant": "t"})])
    batch.rollback(mark)
    assert {t: list(r) for t, r in batch.rows.items() if r} == before
    assert batch.events == 1
    assert batch.raw_rows("requests_raw") == raw_before
    assert [row[1] for row in batch.raw_rows("requests_raw")] == [1]
    columns = {table: cols for table, _, cols in batch.tables()}
    assert columns["endpoints"][1] == [1]  # endpoint 2 was never registered
