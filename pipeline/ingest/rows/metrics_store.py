"""The SQL the metrics topic's series gate reads (`pipeline.ingest.rows.metrics.SeriesGate`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.storage.clickhouse import AsyncStore

__all__ = ["stored_series"]


async def stored_series(store: AsyncStore, per_tenant: int) -> list[tuple[Any, ...]]:
    """(tenant, name, series key, kind) of the stored series, at most `per_tenant` a tenant."""
    return await store.rows(
        f"SELECT tenant, name, series_key, kind FROM {store.database}.metric_series FINAL "
        f"LIMIT {per_tenant} BY tenant")
