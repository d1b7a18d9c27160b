"""The SQL of rollup compaction (`pipeline.ingest.compaction`): which buckets are stale, and
their merged rows written from the rollup spec (`pipeline.storage.rollup`)."""

from __future__ import annotations

from pipeline.storage.clickhouse import Store
from pipeline.storage.rollup import ROLLUP_FIELDS, merged

__all__ = ["MERGED", "compact"]

#: The compacted twin of each rollup.
MERGED = {"requests_1m": "requests_1m_merged", "requests_1h": "requests_1h_merged"}


def _stale_sql(db: str, table: str, lo: int, hi: int) -> str:
    merged = MERGED[table]
    return (f"SELECT tenant, endpoint_id, toUnixTimestamp(bucket), count() AS n "
            f"FROM {db}.{table} FINAL WHERE bucket >= toDateTime({lo}, 'UTC') "
            f"AND bucket < toDateTime({hi}, 'UTC') GROUP BY tenant, endpoint_id, bucket "
            f"HAVING (tenant, endpoint_id, bucket, n) NOT IN (SELECT tenant, endpoint_id, "
            f"bucket, src_rows FROM {db}.{merged} FINAL WHERE bucket >= toDateTime({lo}, 'UTC') "
            f"AND bucket < toDateTime({hi}, 'UTC'))")


def compact(store: Store, table: str, lo: int, hi: int, version: int) -> int:
    """Merge every bucket in [lo, hi) whose compacted row is missing or stale; return how many
    buckets were written."""
    db = store.database
    stale = store.rows(_stale_sql(db, table, lo, hi))
    if not stale:
        return 0
    fields = ", ".join(merged(f) for f in ROLLUP_FIELDS)
    written = 0
    for i in range(0, len(stale), 2000):
        chunk = stale[i:i + 2000]
        keys = ", ".join(f"({_quote(t)}, {int(ep)}, toDateTime({int(b)}, 'UTC'))"
                         for t, ep, b, _ in chunk)
        store.command(
            f"INSERT INTO {db}.{MERGED[table]} (tenant, endpoint_id, bucket, src_rows, "
            f"{', '.join(ROLLUP_FIELDS)}, version) SELECT tenant, endpoint_id, bucket, count(), "
            f"{fields}, {version} FROM {db}.{table} FINAL WHERE bucket >= toDateTime({lo}, "
            f"'UTC') AND bucket < toDateTime({hi}, 'UTC') AND (tenant, endpoint_id, bucket) IN "
            f"({keys}) GROUP BY tenant, endpoint_id, bucket")
        written += len(chunk)
    return written


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"
