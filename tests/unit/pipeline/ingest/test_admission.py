"""The doors (HTTP ingest, `vitals publish`) judge events with the worker's rules."""

from __future__ import annotations

import orjson
import pytest

from pipeline.core.errors import InvalidEvent
from pipeline.core.settings import Settings
from pipeline.ingest.admission import Admission, Verdict
from pipeline.ingest.rows.task_events import request_log_id
from pipeline.storage.retention import DAY_MS, Retention

NOW_S = 1_760_000_000
NOW_MS = NOW_S * 1000


def scalar(ts_ms: int, i: int = 0) -> dict[str, object]:
    return {"type": "training_stats_scalar", "task": "t", "iter": i, "metric": "loss",
            "variant": "total", "value": 0.5, "timestamp": ts_ms}


def request(ts_ms: int) -> dict[str, object]:
    return {"v": 1, "type": "request", "ts": ts_ms, "endpoint_id": 1, "status": 200,
            "latency_ms": 5.0}


def test_task_events_months_old_are_accepted_by_default() -> None:
    door = Admission.of(Settings(), "task-events", NOW_S)
    old = NOW_MS - 72 * DAY_MS
    assert door.judge([scalar(old, i) for i in range(3)]) == Verdict([0, 1, 2], {})


def test_events_past_their_familys_retention_are_refused_with_the_reason() -> None:
    s = Settings(retention=Retention(task_events=60))
    door = Admission.of(s, "task-events", NOW_S)
    old, fresh = NOW_MS - 72 * DAY_MS, NOW_MS - 59 * DAY_MS
    verdict = door.judge([scalar(fresh), scalar(old), "x", scalar(NOW_MS + 301_000)])
    assert verdict == Verdict([0], {
        1: f"timestamp: {old} is older than the retention of 60 days",
        2: "event: expected object",
        3: f"timestamp: {NOW_MS + 301_000} is 301 s in the future (limit 300 s)"})
    requests = Admission.of(s, "requests", NOW_S)
    with pytest.raises(InvalidEvent) as info:
        requests.check(request(NOW_MS - 31 * DAY_MS))
    assert info.value.reason == f"ts: {NOW_MS - 31 * DAY_MS} is older than the retention of 30 days"
    requests.check(request(NOW_MS - 29 * DAY_MS))


def test_schema_and_size_are_the_workers() -> None:
    door = Admission.of(Settings(max_message_bytes=1024), "task-events", NOW_S)
    big = {**scalar(NOW_MS), "metric": "m" * 1000}
    bad = {**scalar(NOW_MS), "value": "high"}
    verdict = door.judge([big, bad, scalar(NOW_MS)])
    size = len(orjson.dumps(big))
    assert verdict == Verdict([2], {0: f"event of {size} bytes exceeds the 1022-byte limit",
                                    1: "value: expected number, got string"})


def test_request_log_ids_are_stable_and_ordered_by_line() -> None:
    assert request_log_id("0123456789abcdef0123456789", 7) == "r0123456789abcdef012345670000007"
    assert request_log_id("ab" * 12, 2) < request_log_id("ab" * 12, 10)
