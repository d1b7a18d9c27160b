"""`migrate` is idempotent and applies retention changes per data family: re-running it with the
same settings leaves every table as it was; a changed family reaches its tables' TTL, and a
family kept until deleted has none (task events by default)."""

from __future__ import annotations

import uuid
from pathlib import Path

from pipeline.storage.clickhouse import ClickHouseStore, migrate
from pipeline.storage.retention import Retention


def engines(store: ClickHouseStore) -> dict[str, str]:
    return dict(store.rows("SELECT name, engine_full FROM system.tables WHERE database = "
                           "{db:String}", {"db": store.database}))


def ttl(engine: str) -> str:
    """The TTL clause of an `engine_full`, '' when the table has none."""
    if " TTL " not in engine:
        return ""
    return engine.split(" TTL ", 1)[1].split(" SETTINGS ", 1)[0]


#: The query docs/operations.md ("Retention per data family") gives analysts, for database `vitals`.
DOC_QUERY = """SELECT name, extract(engine_full, 'TTL (.*?)( SETTINGS|$)') AS ttl
FROM system.tables WHERE database = 'vitals' ORDER BY name;"""


def test_migrate_is_idempotent_and_applies_retention_per_family(chdb_dsn: str) -> None:
    store = ClickHouseStore(chdb_dsn, f"migr_{uuid.uuid4().hex[:8]}")
    applied = migrate(store)
    assert applied == sorted(applied) and applied[0].startswith("001_")
    first = engines(store)
    doc = Path(__file__).parents[3].joinpath("docs/operations.md").read_text()
    assert DOC_QUERY in doc
    in_force = store.rows(DOC_QUERY.replace("'vitals'", f"'{store.database}'").rstrip(";"))
    assert {name: t for name, t in in_force if t} == {t: ttl(e) for t, e in first.items() if ttl(e)}
    assert {t: ttl(e) for t, e in first.items() if ttl(e)} == {
        "requests_raw": "toDateTime(ts) + toIntervalDay(30)",
        "requests_1s": "bucket + toIntervalDay(30)",
        "requests_1m": "bucket + toIntervalDay(400)",
        "requests_1m_merged": "bucket + toIntervalDay(400)",
        "requests_1m_rows": "bucket + toIntervalDay(400)",
        "requests_io_1m": "bucket + toIntervalDay(400)",
        "requests_1h": "bucket + toIntervalDay(400)",
        "requests_1h_merged": "bucket + toIntervalDay(400)",
        "requests_1h_rows": "bucket + toIntervalDay(400)",
        "heartbeats_raw": "toDateTime(ts) + toIntervalDay(30)",
        "metrics_1s": "bucket + toIntervalDay(30)",
        "job_tasks": "toDateTime(ts) + toIntervalDay(400)",
        "job_nodes": "toDateTime(ts) + toIntervalDay(400)",
        "dead_letters": "toDateTime(received_at) + toIntervalDay(30)",
    }
    assert ttl(first["task_metric_events"]) == ttl(first["task_log_events"]) == ""
    assert migrate(store) == applied
    assert engines(store) == first

    migrate(store, retention=Retention(requests=7, requests_1h=90, heartbeats=3,
                                       task_events=365, dead_letters=None))
    changed = engines(store)
    assert ttl(changed["requests_raw"]) == "toDateTime(ts) + toIntervalDay(7)"
    assert ttl(changed["requests_1s"]) == "bucket + toIntervalDay(30)"
    assert ttl(changed["heartbeats_raw"]) == "toDateTime(ts) + toIntervalDay(3)"
    assert ttl(changed["requests_1h"]) == ttl(changed["requests_1h_rows"]) == \
        ttl(changed["requests_1h_merged"]) == "bucket + toIntervalDay(90)"
    assert ttl(changed["requests_1m_rows"]) == "bucket + toIntervalDay(400)"
    assert ttl(changed["task_metric_events"]) == ttl(changed["task_log_events"]) == \
        "toDateTime(timestamp) + toIntervalDay(365)"
    assert ttl(changed["dead_letters"]) == ""
    unchanged = ("requests_1m", "metrics_1s", "job_tasks", "job_nodes", "api_keys")
    assert {t: changed[t] for t in unchanged} == {t: first[t] for t in unchanged}

    migrate(store)  # back to the defaults: task events lose their TTL again
    assert engines(store) == first
