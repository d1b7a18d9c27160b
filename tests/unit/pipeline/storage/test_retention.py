"""Retention per data family: settings, the tables each family covers, and the age rules the
doors (HTTP ingest, `vitals publish`) and the worker apply."""

from __future__ import annotations

import pytest

from pipeline.core.settings import NO_AGE_LIMIT_MS, Settings, SettingsError
from pipeline.ingest.decode import decode_envelope
from pipeline.ingest.topics import KINDS
from pipeline.storage import retention
from pipeline.storage.retention import CONSUMER_GRACE_MS, DAY_MS, TTL_TABLES, Retention


def test_defaults_keep_task_history_and_expire_telemetry() -> None:
    r = Settings.from_env({}).retention
    assert r == Retention(requests=30, requests_1s=30, requests_1m=400, requests_1h=400,
                          heartbeats=30, task_events=None, metrics=30, jobs=400,
                          dead_letters=30)
    s = Settings()
    assert s.max_age_ms("task-events") == NO_AGE_LIMIT_MS
    assert s.max_age_ms("requests") == 30 * DAY_MS + CONSUMER_GRACE_MS
    assert s.max_age_ms("jobs") == 400 * DAY_MS + CONSUMER_GRACE_MS
    assert r.door_max_age_ms("requests") == 30 * DAY_MS
    assert r.door_max_age_ms("task-events") is None
    assert s.ingest_timeout_s == 10.0


def test_each_family_has_its_variable() -> None:
    s = Settings.from_env({"VITALS_RETENTION_TASK_EVENTS_DAYS": "90",
                           "VITALS_RETENTION_REQUESTS_1M_DAYS": "120",
                           "VITALS_RETENTION_HEARTBEATS_DAYS": "7",
                           "VITALS_RETENTION_JOBS_DAYS": "none",
                           "VITALS_INGEST_TIMEOUT_S": "2.5"})
    assert s.retention == Retention(task_events=90, requests_1m=120, heartbeats=7, jobs=None)
    assert s.max_age_ms("task-events") == 90 * DAY_MS + CONSUMER_GRACE_MS
    assert s.max_age_ms("jobs") == NO_AGE_LIMIT_MS
    assert s.ingest_timeout_s == 2.5
    assert retention.ENV["requests_1s"] == "VITALS_RETENTION_REQUESTS_1S_DAYS"
    assert retention.ENV["dead_letters"] == "VITALS_RETENTION_DEAD_LETTERS_DAYS"


def test_legacy_single_setting_sets_the_telemetry_families_only() -> None:
    s = Settings.from_env({"VITALS_RETENTION_DAYS": "7",
                           "VITALS_RETENTION_METRICS_DAYS": "14"})
    assert s.retention == Retention(requests=7, requests_1s=7, heartbeats=7, metrics=14,
                                    dead_letters=7)


@pytest.mark.parametrize("env,message", [
    ({"VITALS_RETENTION_REQUESTS_DAYS": "0"},
     "VITALS_RETENTION_REQUESTS_DAYS='0': use a whole number of days >= 1, or 'none' "
     "(keep until deleted)"),
    ({"VITALS_RETENTION_TASK_EVENTS_DAYS": "1.5"},
     "VITALS_RETENTION_TASK_EVENTS_DAYS='1.5': use a whole number of days >= 1, or 'none' "
     "(keep until deleted)"),
    ({"VITALS_RETENTION_DAYS": "-3"},
     "VITALS_RETENTION_DAYS='-3': use a whole number of days >= 1, or 'none' "
     "(keep until deleted)"),
    ({"VITALS_INGEST_TIMEOUT_S": "0"}, "VITALS_INGEST_TIMEOUT_S=0.0 must be > 0"),
])
def test_bad_values_are_one_line_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert str(info.value) == message


def test_every_kind_and_table_has_a_family() -> None:
    assert set(retention.KIND_FAMILY) == set(KINDS)
    assert set(retention.FAMILIES) == set(retention.ENV)
    assert {family for _, _, family in TTL_TABLES} == set(retention.FAMILIES)
    tables = [t for t, _, _ in TTL_TABLES]
    assert len(tables) == len(set(tables)) == 16


NOW_MS = 1_760_000_000_000


def _request(ts_ms: int) -> bytes:
    return (b'{"v":1,"type":"request","ts":%d,"endpoint_id":1,"status":200,'
            b'"latency_ms":5.0}' % ts_ms)


def test_the_worker_allows_the_consumer_grace_beyond_the_door() -> None:
    s = Settings()
    edge = NOW_MS - 30 * DAY_MS - 3_600_000  # an hour past the retention
    out = decode_envelope(_request(edge), "requests", now_ms=NOW_MS, max_future_ms=300_000,
                          max_bytes=1 << 20, max_age_ms=s.max_age_ms("requests"))
    assert out.rejects == [] and len(out.events) == 1
    beyond = NOW_MS - 30 * DAY_MS - CONSUMER_GRACE_MS - 1
    out = decode_envelope(_request(beyond), "requests", now_ms=NOW_MS, max_future_ms=300_000,
                          max_bytes=1 << 20, max_age_ms=s.max_age_ms("requests"))
    assert [r.reason for r in out.rejects] == [
        f"ts: {beyond} is older than the retention of 30 days"]
