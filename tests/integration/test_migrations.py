"""`migrate` is idempotent and applies retention changes: re-running it with the same settings
leaves every table as it was, and a new VITALS_RETENTION_DAYS reaches the raw tables' TTL."""

from __future__ import annotations

import uuid

from pipeline.storage import ClickHouseStore, migrate


def engines(store: ClickHouseStore) -> dict[str, str]:
    return dict(store.rows("SELECT name, engine_full FROM system.tables WHERE database = "
                           "{db:String}", {"db": store.database}))


def test_migrate_is_idempotent_and_applies_new_retention(chdb_dsn: str) -> None:
    store = ClickHouseStore(chdb_dsn, f"migr_{uuid.uuid4().hex[:8]}")
    applied = migrate(store)
    assert applied == sorted(applied) and applied[0].startswith("001_")
    first = engines(store)
    assert "TTL toDateTime(ts) + toIntervalDay(30)" in first["requests_raw"]
    assert "TTL bucket + toIntervalDay(400)" in first["requests_1m_rows"]
    assert migrate(store) == applied
    assert engines(store) == first
    migrate(store, raw_ttl_days=7, rollup_ttl_days=90)
    changed = engines(store)
    assert "TTL toDateTime(ts) + toIntervalDay(7)" in changed["requests_raw"]
    assert "TTL toDateTime(ts) + toIntervalDay(7)" in changed["heartbeats_raw"]
    assert "TTL bucket + toIntervalDay(90)" in changed["requests_1h"]
    assert "TTL bucket + toIntervalDay(90)" in changed["requests_1m_rows"]
