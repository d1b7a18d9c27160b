"""Mergeable log-bucketed latency histogram with a stated relative error bound.

Bucket `i` covers (γ^(i-1), γ^i] with γ = (1+α)/(1-α); its representative value 2γ^i/(γ+1)
is within relative error α of every value in the bucket (the DDSketch construction). With
α = 0.01 any quantile read from merged buckets is within 1% of a true sample value of that rank:
the documented bound is **1% relative error** (the API promises ≤ 2%).

Histograms are plain `{bucket index: count}` maps, stored in ClickHouse as Map(Int16, UInt64)
and merged with `sumMap`, so buckets from any set of messages, seconds or workers combine exactly.
Values ≤ `MIN_VALUE` (including 0) land in bucket `ZERO_BUCKET` and read back as 0.

The `sql_*` functions are the same rules as ClickHouse expressions: the migrations
(`pipeline.storage.ddl`) and the reads take their SQL from them, so γ, the zero bucket and the
quantile rank are written here only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = [
    "ALPHA",
    "GAMMA",
    "MAX_BUCKET",
    "MAX_VALUE",
    "MIN_VALUE",
    "STORED_PERCENTILES",
    "ZERO_BUCKET",
    "add",
    "bucket_of",
    "bucket_value",
    "merge",
    "quantile",
    "quantiles",
    "sql_bucket_of",
    "sql_hist_quantile",
    "sql_quantile",
    "sql_sorted_counts",
    "sql_sorted_keys",
]

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
MIN_VALUE = 1e-3
ZERO_BUCKET = -32768
#: The largest bucket index the Int16 key of the stored maps holds, and the largest value whose
#: bucket is at most that (one bucket of margin for the rounding of `log`). Every schema bound on
#: a value that is bucketed stays below it (tests/unit/pipeline/storage/test_sketch.py).
MAX_BUCKET = 32767
MAX_VALUE = GAMMA ** (MAX_BUCKET - 1)
#: The percentiles a compacted rollup row stores, as bucket indexes (schemas/clickhouse/005).
STORED_PERCENTILES = {"p50_bucket": 0.5, "p95_bucket": 0.95, "p99_bucket": 0.99}


def bucket_of(value: float) -> int:
    """Bucket index of a non-negative value."""
    if value <= MIN_VALUE:
        return ZERO_BUCKET
    return math.ceil(math.log(value) / _LOG_GAMMA)


def bucket_value(index: int) -> float:
    """Representative value of a bucket (relative error ≤ ALPHA for every member)."""
    if index == ZERO_BUCKET:
        return 0.0
    return 2 * GAMMA**index / (GAMMA + 1)


def add(hist: dict[int, int], value: float, count: int = 1) -> None:
    key = bucket_of(value)
    hist[key] = hist.get(key, 0) + count


def merge(hists: Iterable[Mapping[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for h in hists:
        for k, c in h.items():
            out[k] = out.get(k, 0) + c
    return out


def quantile(hist: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0 ≤ q ≤ 1), using the lower-rank convention rank = ceil(q·n), min 1."""
    return quantiles(hist, [q])[0]


def quantiles(hist: Mapping[int, int], qs: Iterable[float]) -> list[float | None]:
    total = sum(hist.values())
    wanted = list(qs)
    if total == 0:
        return [None for _ in wanted]
    keys = sorted(hist)
    out: list[float | None] = []
    for q in wanted:
        if not 0 <= q <= 1:
            raise ValueError(f"quantile {q} outside [0, 1]")
        rank = max(1, math.ceil(q * total))
        seen = 0
        for k in keys:
            seen += hist[k]
            if seen >= rank:
                out.append(bucket_value(k))
                break
    return out


def sql_bucket_of(value: str) -> str:
    """`bucket_of(value)` as a ClickHouse Int16 expression over the expression `value`."""
    return (f"if({value} <= {MIN_VALUE!r}, toInt16({ZERO_BUCKET}), "
            f"toInt16(ceil(log({value}) / {_LOG_GAMMA!r})))")


def sql_sorted_keys(hist: str) -> str:
    """The bucket indexes of the map `hist`, ascending."""
    return f"arraySort(mapKeys({hist}))"


def sql_sorted_counts(hist: str) -> str:
    """The counts of the map `hist` in the order of `sql_sorted_keys`."""
    return f"arraySort((v, k) -> k, mapValues({hist}), mapKeys({hist}))"


def sql_quantile(q: float, keys: str, running: str, total: str) -> str:
    """The bucket index `quantile` reads for `q`: the first of the ascending indexes `keys`
    whose running count (array `running`) reaches rank max(1, ceil(q·`total`))."""
    return f"{keys}[arrayFirstIndex(c -> c >= greatest(1, ceil({q} * {total})), {running})]"


def sql_hist_quantile(q: float, hist: str) -> str:
    """`sql_quantile` over the map `hist` itself."""
    return sql_quantile(q, sql_sorted_keys(hist), f"arrayCumSum({sql_sorted_counts(hist)})",
                        f"arraySum(mapValues({hist}))")
