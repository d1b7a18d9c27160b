"""The SQL of the operations routes' scrape-time gauges."""

from __future__ import annotations

from pipeline.storage.clickhouse import AsyncStore

__all__ = ["live_workers"]


async def live_workers(store: AsyncStore, lo_ms: int, hi_ms: int) -> list[tuple[str, int, int]]:
    """(tenant, endpoint id, distinct workers) with a heartbeat in (lo_ms, hi_ms]."""
    rows = await store.rows(
        f"SELECT tenant, endpoint_id, uniqExact(worker_id) FROM {store.database}"
        f".heartbeats_raw WHERE ts > fromUnixTimestamp64Milli({{lo:Int64}}, 'UTC') "
        f"AND ts <= fromUnixTimestamp64Milli({{hi:Int64}}, 'UTC') GROUP BY tenant, endpoint_id",
        {"lo": lo_ms, "hi": hi_ms})
    return [(str(t), int(ep), int(n)) for t, ep, n in rows]
