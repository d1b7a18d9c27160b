"""Compaction of the 1m and 1h request rollups into one row per (tenant, endpoint, bucket).

Why: the rollups hold one row per Kafka message per bucket (that is what keeps them exact under
redelivery), so a busy endpoint's day at 1m is ~100k rows whose latency histograms must be merged
on every read. The compactor merges closed buckets ahead of time into `requests_1m_merged` /
`requests_1h_merged` (schemas/clickhouse/004_endpoint_metrics.sql).

Exactness: a compacted row records `src_rows`, how many deduplicated (FINAL) source rows it
merged. Source rows are only ever added (a redelivered message re-inserts identical rows, which
FINAL collapses), so the compacted row equals the bucket's true aggregate exactly while the
source still counts `src_rows` rows; readers check that per bucket and otherwise read the source
rows. The compactor therefore only affects speed, never results. It rewrites any bucket whose
count changed (late or new messages), newest `version` winning.

It runs inside each worker process (`Runtime`), every `interval_s`, over buckets that closed at
least `GRACE_S` ago within the last `SCAN_S[table]` seconds. Several workers compacting the same
bucket write identical rows; harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pipeline.core.clock import RowVersions
from pipeline.ingest.compaction_store import MERGED, compact
from pipeline.storage.clickhouse import AsyncStore, Store

__all__ = ["GRACE_S", "MERGED", "SCAN_S", "compact", "run"]

log = logging.getLogger("vitals.compaction")

WIDTH = {"requests_1m": 60, "requests_1h": 3600}
SCAN_S = {"requests_1m": 2 * 86400, "requests_1h": 35 * 86400}
GRACE_S = 60


def _compactor(table: str, lo: int, hi: int, version: int) -> Callable[[Store], int]:
    return lambda s: compact(s, table, lo, hi, version)


async def run(store: AsyncStore, interval_s: float, clock: Callable[[], float]) -> None:
    """Compact both rollups every `interval_s` until cancelled; errors are logged and retried."""
    versions = RowVersions(clock)
    while True:
        now = int(clock())
        for table, width in WIDTH.items():
            hi = (now - GRACE_S) // width * width
            lo = hi - SCAN_S[table]
            try:
                n = await store.call(_compactor(table, lo, hi, versions()))
            except Exception as exc:  # storage hiccups must not stop the worker
                log.warning("compaction of %s failed: %s", table, exc)
                continue
            if n:
                log.debug("compacted %d %s buckets", n, table)
        await asyncio.sleep(interval_s)
