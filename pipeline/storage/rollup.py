"""The request rollups' columns and how rows of one bucket merge, declared once.

`requests_1s`/`1m`/`1h` (schemas/clickhouse/001 and 006) hold these columns per (tenant,
endpoint, autogroup, bucket, source message); every read or compaction that merges their rows
generates its SQL from `ROLLUP_FIELDS` and `merge_fn`, and the sink's Python rows follow the
same order. The latency histogram is the sketch of `pipeline.storage.sketch`. Pure.
"""

from __future__ import annotations

__all__ = ["MERGE", "ROLLUP_FIELDS", "SUM_COLUMNS", "merge_fn", "merged"]

ROLLUP_FIELDS = (
    "requests", "successes", "failures", "err_client", "err_server", "err_timeout",
    "err_resource", "err_other", "work_units", "tokens_in", "tokens_out", "latency_sum",
    "latency_min", "latency_max", "latency_hist", "queue_ms_sum", "cold_starts",
    "cold_start_ms_sum", "gpu_seconds", "bytes_out",
)
#: How a column's values of one bucket combine; every other column sums.
MERGE = {"latency_min": "min", "latency_max": "max", "latency_hist": "sumMap"}
#: The numeric columns (all but the histogram), in `ROLLUP_FIELDS` order.
SUM_COLUMNS = tuple(c for c in ROLLUP_FIELDS if c != "latency_hist")


def merge_fn(column: str) -> str:
    """The ClickHouse aggregate that merges `column` over rows of one bucket."""
    return MERGE.get(column, "sum")


def merged(column: str) -> str:
    """`merge_fn(column)(column)`, the SQL of the merged column."""
    return f"{merge_fn(column)}({column})"
