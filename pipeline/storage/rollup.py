"""The request rollups' columns and how rows of one bucket merge, declared once.

`requests_1s`/`1m`/`1h` (schemas/clickhouse/001 and 006) hold these columns per (tenant,
endpoint, autogroup, bucket, source message); every read or compaction that merges their rows
generates its SQL from `ROLLUP_FIELDS` and `merge_fn`, and the sink's Python rows follow the
same order; the materialized views that write them (006) select `FROM_RAW`. The latency
histogram is the sketch of `pipeline.storage.sketch`. Pure.
"""

from __future__ import annotations

from pipeline.storage.sketch import sql_bucket_of

__all__ = ["FROM_RAW", "IO_FROM_RAW", "MERGE", "ROLLUP_FIELDS", "SUM_COLUMNS", "from_raw_select",
           "io_from_raw_select", "merge_fn", "merged"]

ROLLUP_FIELDS = (
    "requests", "successes", "failures", "err_client", "err_server", "err_timeout",
    "err_resource", "err_other", "work_units", "tokens_in", "tokens_out", "latency_sum",
    "latency_min", "latency_max", "latency_hist", "queue_ms_sum", "cold_starts",
    "cold_start_ms_sum", "gpu_seconds", "bytes_out",
)
#: How a column's values of one bucket combine; every other column sums.
MERGE = {"latency_min": "min", "latency_max": "max", "latency_hist": "sumMap"}
#: Each column as an aggregate over the `requests_raw` rows of one bucket and source message.
#: `error_kind` holds the normalised failure class ('' for a success), as the worker writes it.
FROM_RAW = {
    "requests": "count()",
    "successes": "countIf(success)",
    "failures": "countIf(NOT success)",
    "err_client": "countIf(error_kind = 'client')",
    "err_server": "countIf(error_kind = 'server')",
    "err_timeout": "countIf(error_kind = 'timeout')",
    "err_resource": "countIf(error_kind = 'resource_exhausted')",
    "err_other": "countIf(error_kind = 'other')",
    "work_units": "sum(work_units)",
    "tokens_in": "sum(tokens_in)",
    "tokens_out": "sum(tokens_out)",
    "latency_sum": "sum(latency_ms)",
    "latency_min": "min(latency_ms)",
    "latency_max": "max(latency_ms)",
    "latency_hist": f"sumMap(map({sql_bucket_of('latency_ms')}, toUInt64(1)))",
    "queue_ms_sum": "sum(queue_ms)",
    "cold_starts": "countIf(cold_start)",
    "cold_start_ms_sum": "sumIf(cold_start_ms, cold_start)",
    "gpu_seconds": "sum(gpu_seconds)",
    "bytes_out": "sum(bytes_out)",
}
#: The numeric columns (all but the histogram), in `ROLLUP_FIELDS` order.
SUM_COLUMNS = tuple(c for c in ROLLUP_FIELDS if c != "latency_hist")


def merge_fn(column: str) -> str:
    """The ClickHouse aggregate that merges `column` over rows of one bucket."""
    return MERGE.get(column, "sum")


def merged(column: str) -> str:
    """`merge_fn(column)(column)`, the SQL of the merged column."""
    return f"{merge_fn(column)}({column})"


def from_raw_select(indent: str = "    ") -> str:
    """The select list of every rollup column from `requests_raw`, one column a line."""
    return f",\n{indent}".join(f"{FROM_RAW[c]} AS {c}" for c in ROLLUP_FIELDS)


#: `requests_io_1m` (migration 012): the optional request fields per (minute, message), each as
#: an aggregate over the `requests_raw` rows; a message whose aggregates are all zero reported
#: neither field and writes no row.
IO_FROM_RAW = {
    "bytes_in": "sum(bytes_in)",
    "cache_hits": "countIf(cache = 'hit')",
    "cache_misses": "countIf(cache = 'miss')",
}


def io_from_raw_select(indent: str = "    ") -> str:
    """The select list of the `requests_io_1m` columns from `requests_raw`, one a line."""
    return f",\n{indent}".join(f"{sql} AS {c}" for c, sql in IO_FROM_RAW.items())
