"""ClickHouse reads behind the endpoint metrics: rollup series, heartbeats, sessions, pricing.

Rollup rows are read with FINAL and summed (redelivered messages count once). Latency
percentiles are computed inside ClickHouse from the merged log-bucket histogram (`sumMap`):
each percentile is the sketch bucket holding rank max(1, ceil(q·n)), the same rule as
`pipeline.storage.sketch.quantiles`, so only three bucket indexes per point leave the server.
"""

from __future__ import annotations

import asyncio
import struct

import numpy as np

from pipeline.core.clock import row_version
from pipeline.ingest.compaction import GRACE_S, MERGED
from pipeline.storage import sketch
from pipeline.storage.clickhouse import AsyncStore, Store
from pipeline.storage.rollup import ROLLUP_FIELDS, SUM_COLUMNS, merge_fn, merged
from query_api.endpoint_metrics.scaling import Session, sessions_from_gaps
from query_api.endpoint_metrics.sections import Pricing, Resources, Sums
from query_api.endpoint_metrics.series_cache import Bucket, ScopeSeries, SeriesCache
from query_api.entities import Scope
from query_api.entities_store import scope_params, scope_where
from query_api.windows import split_range

__all__ = [
    "fetch_input_cache",
    "fetch_resources",
    "fetch_series",
    "fetch_sessions",
    "fetch_sums",
    "load_pricing",
    "parse_buckets",
    "save_pricing",
]

#: Appended to every read here that uses FINAL. ClickHouse otherwise merges rows across all
#: parts of the range, partitions included; each table read here (requests_1m/1h, their
#: compacted twins, heartbeats_raw) is partitioned by a function of a sorting-key column
#: (`bucket` or `ts`), so rows with equal keys always share a partition and FINAL within each
#: partition is FINAL over the table: same rows, half the CPU of the heartbeat read here.
_FINAL = " SETTINGS do_not_merge_across_partitions_select_final = 1"

_SUMS = ", ".join(merged(c) for c in SUM_COLUMNS)
#: The merged histogram `h` as sorted bucket indexes `ks`, their counts `vs`, running counts
#: `cs` and total `n`; a quantile is the first bucket whose running count reaches q * n (the
#: same rule as `sketch.quantile` and the compacted rows' p50/p95/p99).
_HIST_ARRAYS = (f"{sketch.sql_sorted_keys('h')} AS ks, {sketch.sql_sorted_counts('h')} AS vs, "
                "arrayCumSum(vs) AS cs, arraySum(vs) AS n")
_QUANTILE_EXPRS = [sketch.sql_quantile(q, "ks", "cs", "n")
                   for q in sketch.STORED_PERCENTILES.values()]
_QUANTILES = ", ".join(_QUANTILE_EXPRS)
_SUMS_AS = ", ".join(f"{merged(c)} AS c{i}" for i, c in enumerate(SUM_COLUMNS))
_RES_AGG = {"avg": "avg({c})", "sum": "sum({c})", "min": "min({c})", "max": "max({c})",
            "p95": "quantileExact(0.95)({c})", "p99": "quantileExact(0.99)({c})"}


def _table(step: int) -> str:
    return "requests_1m" if step < 3600 else "requests_1h"


def _ranges(buckets: list[int], width: int) -> list[tuple[int, int]]:
    """Sorted bucket starts as [lo, hi) runs of consecutive buckets."""
    out: list[tuple[int, int]] = []
    for t in sorted(buckets):
        if out and out[-1][1] == t:
            out[-1] = (out[-1][0], t + width)
        else:
            out.append((t, t + width))
    return out


def _bucket_filter(buckets: list[int], width: int) -> str:
    runs = _ranges(buckets, width)
    if len(runs) <= 32:
        return "(" + " OR ".join(f"(bucket >= toDateTime({lo}, 'UTC') AND bucket < "
                                 f"toDateTime({hi}, 'UTC'))" for lo, hi in runs) + ")"
    return "bucket IN (" + ", ".join(f"toDateTime({t}, 'UTC')" for t in buckets) + ")"


async def _rollup_rows(store: AsyncStore, scope: Scope, step: int, start: int, end: int
                       ) -> str:
    """SQL for rows whose merge is the exact aggregate of [start, end): each bucket's compacted
    row (pipeline/ingest/compaction.py) when it still merges every deduplicated source row of the
    bucket, else the bucket's source rows (`_split` decides)."""
    db, table = store.database, _table(step)
    merged, width = MERGED[table], 60 if table == "requests_1m" else 3600
    rng = (f"{scope_where(scope)} AND bucket >= toDateTime({start}, 'UTC') "
           f"AND bucket < toDateTime({end}, 'UTC')")
    cols = ", ".join(("bucket", *ROLLUP_FIELDS))
    if scope.autogroup_id is not None:
        return f"SELECT {cols} FROM {db}.{table} FINAL WHERE {rng}"
    fresh, stale = await _split(store, scope, table, rng)
    parts = []
    if fresh:
        parts.append(f"SELECT {cols} FROM {db}.{merged} FINAL WHERE {rng} "
                     f"AND {_bucket_filter(fresh, width)}")
    if stale or not parts:
        cond = _bucket_filter(stale, width) if stale else "0"
        parts.append(f"SELECT {cols} FROM {db}.{table} FINAL WHERE {rng} AND {cond}")
    return " UNION ALL ".join(parts)


async def fetch_series(store: AsyncStore, scope: Scope, start: int, end: int, step: int,
                       cache: SeriesCache | None = None, now: float | None = None
                       ) -> tuple[dict[int, Sums], Sums, dict[int, int]]:
    """(point start → sums, window total, window latency histogram) over [start, end).

    The inner query merges the rollup rows into one row per point (the only pass over the
    per-message rows); the outer one derives the points' percentiles and, through GROUPING
    SETS, the window total (point 0) from those few merged rows. When a point is one rollup
    bucket (1m from the 1m table, 1h from the 1h table), `_fetch_bucket_series` reads the
    buckets themselves, through `cache`."""
    if step == (60 if _table(step) == "requests_1m" else 3600):
        return await _fetch_bucket_series(store, scope, start, end, step, cache,
                                          end if now is None else now)
    rows_sql = await _rollup_rows(store, scope, step, start, end)
    inner = (f"SELECT intDiv(toUnixTimestamp(bucket), {step}) * {step} AS p, {_SUMS_AS}, "
             f"sumMap(latency_hist) AS lh FROM ({rows_sql}) GROUP BY p")
    outer = ", ".join(merge_fn(c) + f"(c{i})" for i, c in enumerate(SUM_COLUMNS))
    sql = (f"WITH sumMap(lh) AS h, {_HIST_ARRAYS} SELECT p, {outer}, {_QUANTILES}, "
           f"if(p = 0, ks, []), if(p = 0, vs, []) FROM ({inner}) "
           f"GROUP BY GROUPING SETS ((p), ()) ORDER BY p")
    rows = await store.rows(sql + _FINAL, scope_params(scope))
    points = {t: Sums() for t in range(start, end, step)}
    total = Sums()
    hist: dict[int, int] = {}
    width = len(SUM_COLUMNS)
    for row in rows:
        t = int(row[0])
        sums = Sums.from_row(row[1: width + 4])
        if t == 0:
            total = sums
            hist = {int(k): int(v) for k, v in zip(row[-2], row[-1], strict=True)}
        else:
            points[t] = sums
    return points, total, hist


async def _split(store: AsyncStore, scope: Scope, table: str, rng: str
                 ) -> tuple[list[int], list[int]]:
    """Buckets of `table` in `rng` with data, as (fresh, stale).

    A bucket is fresh when the rows ever written into it (`<table>_rows`,
    007_rollup_row_counts.sql) number exactly its compacted row's `src_rows` (the deduplicated
    count the compactor merged). Why that is exact: source keys are only ever added, and a merge
    only drops a duplicate of a key that stays. So the bucket holds every key the compactor saw,
    and rows written ≥ distinct keys ≥ `src_rows`; equality leaves no room for a new key or a
    duplicate. A redelivered message's duplicate thus keeps its buckets stale (read from the
    source rows, with FINAL): exact, only slower. Reading the counters rather than counting the
    source rows skips a scan of every per-message rollup row of the range."""
    db, merged = store.database, MERGED[table]
    rows = await store.rows(
        f"SELECT b, sum(n), sum(m) FROM (SELECT toUnixTimestamp(bucket) AS b, "
        f"sum(rows) AS n, toUInt64(0) AS m FROM {db}.{table}_rows WHERE {rng} GROUP BY b "
        f"UNION ALL SELECT toUnixTimestamp(bucket), toUInt64(0), src_rows "
        f"FROM {db}.{merged} FINAL WHERE {rng}) GROUP BY b{_FINAL}", scope_params(scope))
    fresh = [int(b) for b, n, m in rows if n and n == m]
    stale = [int(b) for b, n, m in rows if n and n != m]
    return fresh, stale


_FLOATS = frozenset(("work_units", "latency_sum", "latency_min", "latency_max", "queue_ms_sum",
                     "cold_start_ms_sum", "gpu_seconds"))
#: A bucket row of `_read_buckets` in RowBinary, up to its two histogram arrays: bucket start,
#: tag, SUM_COLUMNS, p50/p95/p99 sketch indexes.
_FIXED = struct.Struct("<IQ" + "".join("d" if c in _FLOATS else "Q" for c in SUM_COLUMNS)
                       + "hhh")


def _typed(column: str, expr: str) -> str:
    """`expr` cast to the RowBinary type `_FIXED` reads for SUM_COLUMNS' `column`."""
    return f"to{'Float64' if column in _FLOATS else 'UInt64'}({expr})"


_CASTS = ", ".join(_typed(c, f"c{i}") for i, c in enumerate(SUM_COLUMNS))
#: Source rows merged into one row per bucket: sums, percentiles, the histogram's keys and
#: counts (aligned; their order does not matter to the dense sum).
_SOURCE_BUCKETS = (
    "SELECT toUInt32(b), toUInt64(tag), {casts}, {q}, CAST(mapKeys(h), 'Array(Int16)'), "
    "CAST(mapValues(h), 'Array(UInt64)') FROM (SELECT toUnixTimestamp(bucket) AS b, "
    "count() AS tag, "
    "{sums}, sumMap(latency_hist) AS h, {arrays} FROM {source} FINAL WHERE {where} GROUP BY b)"
).format(casts=_CASTS, sums=_SUMS_AS, arrays=_HIST_ARRAYS, source="{source}", where="{where}",
         q=", ".join(f"toInt16({q})" for q in _QUANTILE_EXPRS))
#: Compacted rows as they are: their percentiles were computed when they were written.
_MERGED_BUCKETS = (
    "SELECT toUInt32(toUnixTimestamp(bucket)), toUInt64(src_rows), {casts}, "
    "{stored}, CAST(mapKeys(latency_hist), 'Array(Int16)'), CAST(mapValues(latency_hist), "
    "'Array(UInt64)') FROM {source} FINAL WHERE {where}"
).format(casts=", ".join(_typed(c, c) for c in SUM_COLUMNS), source="{source}",
         where="{where}", stored=", ".join(f"toInt16({c})" for c in sketch.STORED_PERCENTILES))
#: At most this many missing buckets are read from the source rows straight away; more (a
#: scope's first call) try the compacted rows first.
_DIRECT_READ = 8
#: How far behind GRACE_S the compactor may be (its default interval, 30 s, with room).
_COMPACT_LAG_S = 60


async def _none() -> dict[int, Bucket]:
    return {}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def parse_buckets(data: bytes) -> dict[int, Bucket]:
    """`Bucket`s from the RowBinary of `_SOURCE_BUCKETS` / `_MERGED_BUCKETS`."""
    out: dict[int, Bucket] = {}
    fixed, size, pos, end = _FIXED.unpack_from, _FIXED.size, 0, len(data)
    while pos < end:
        row = fixed(data, pos)
        pos += size
        k = data[pos]  # array lengths are LEB128 varints; one byte below 128
        k, pos = (k, pos + 1) if k < 0x80 else _varint(data, pos)
        slots = np.frombuffer(data, np.uint16, k, pos)  # Int16 keys, read as their slots
        pos += 2 * k
        m = data[pos]
        m, pos = (m, pos + 1) if m < 0x80 else _varint(data, pos)
        counts = np.frombuffer(data, np.uint64, m, pos)
        pos += 8 * m
        out[row[0]] = Bucket(row[1], row[2:], slots, counts)
    return out


async def _read_buckets(store: AsyncStore, scope: Scope, template: str, source: str,
                        where: str) -> dict[int, Bucket]:
    sql = template.format(source=f"{store.database}.{source}", where=where) + _FINAL
    return parse_buckets(await store.raw(sql, "RowBinary", scope_params(scope)))


async def _fetch_bucket_series(store: AsyncStore, scope: Scope, start: int, end: int,
                               step: int, cache: SeriesCache | None, now: float
                               ) -> tuple[dict[int, Sums], Sums, dict[int, int]]:
    """One point per rollup bucket, through the scope's `ScopeSeries` (series_cache.py).

    The rows-written counters of the range say which buckets have rows and which cached ones
    are still exact; only the others are read: a few from their source rows (FINAL) directly,
    many (a first call) from their compacted rows where those merge every source row
    (`_split`'s rule: `src_rows` equal to the counter), the newest few and the rest from
    the source rows.
    An autogroup scope has neither counters nor compacted rows of its own: its buckets are
    read from the source rows on every call."""
    db, table = store.database, _table(step)
    rng = (f"{scope_where(scope)} AND bucket >= toDateTime({start}, 'UTC') "
           f"AND bucket < toDateTime({end}, 'UTC')")
    if scope.autogroup_id is not None:
        series = ScopeSeries()
        series.put(await _read_buckets(store, scope, _SOURCE_BUCKETS, table, rng))
        with_rows = list(series.buckets)
    else:
        key = (scope.tenant, scope.endpoint_id, table)
        series = cache.scope(key) if cache is not None else ScopeSeries()
        counters = {int(b): int(n) for b, n in await store.rows(
            f"SELECT toUnixTimestamp(bucket) AS b, sum(rows) FROM {db}.{table}_rows "
            f"WHERE {rng} GROUP BY b", scope_params(scope))}
        missing = series.missing(counters)
        read: dict[int, Bucket] = {}
        if len(missing) > _DIRECT_READ:
            # The compactor leaves buckets younger than GRACE_S alone and runs every ~30 s:
            # those it has not reached yet are read from the source alongside the others'
            # compacted rows.
            recent = now - step - GRACE_S - _COMPACT_LAG_S
            older = [b for b in missing if b < recent]
            newest = [b for b in missing if b >= recent]
            compacted, read = await asyncio.gather(
                _read_buckets(store, scope, _MERGED_BUCKETS, MERGED[table],
                              f"{rng} AND {_bucket_filter(older, step)}") if older else _none(),
                _read_buckets(store, scope, _SOURCE_BUCKETS, table,
                              f"{rng} AND {_bucket_filter(newest, step)}") if newest else _none())
            read.update((b, c) for b, c in compacted.items() if c.tag == counters.get(b))
        rest = [b for b in missing if b not in read]
        if rest:
            read.update(await _read_buckets(store, scope, _SOURCE_BUCKETS, table,
                                            f"{rng} AND {_bucket_filter(rest, step)}"))
        series.put(read)
        with_rows = [b for b, n in counters.items() if n]
    w = series.window(start, end, step, with_rows)
    if cache is not None:
        cache.trim()
    return w.points, w.total, w.hist


async def fetch_sums(store: AsyncStore, scope: Scope, lo: int, hi: int,
                     step: int | None = None) -> dict[int, Sums]:
    """Sums without percentiles over [lo, hi), per `step` bucket (or one key 0), exact to the
    second: the range is covered by 1h, 1m and 1s rollups (`split_range`)."""
    pieces = split_range(lo, hi)
    if not pieces:
        return {}
    key = "0" if step is None else f"intDiv(toUnixTimestamp(bucket), {step}) * {step}"
    inner = " UNION ALL ".join(
        f"SELECT {key} AS t, {_SUMS_AS} FROM {store.database}.{table} FINAL "
        f"WHERE {scope_where(scope)} "
        f"AND bucket >= toDateTime({a}, 'UTC') AND bucket < toDateTime({b}, 'UTC') GROUP BY t"
        for table, a, b in pieces)
    outer = ", ".join(("min" if c == "latency_min" else "max" if c == "latency_max" else "sum")
                      + f"(c{i})" for i, c in enumerate(SUM_COLUMNS))
    rows = await store.rows(f"SELECT t, {outer} FROM ({inner}) GROUP BY t{_FINAL}",
                            scope_params(scope))
    return {int(r[0]): Sums.from_row((*r[1:], sketch.ZERO_BUCKET, sketch.ZERO_BUCKET,
                                      sketch.ZERO_BUCKET)) for r in rows}


async def fetch_resources(store: AsyncStore, scope: Scope, start: int, end: int, step: int,
                          aggregation: str) -> Resources:
    """GPU/GPU-memory/CPU utilisation from heartbeats in [start, end): window average and peak,
    and per point the samples aggregated with `aggregation`."""
    agg = _RES_AGG[aggregation]
    cols = ", ".join(agg.format(c=c) for c in ("gpu_util", "gpu_mem_util", "cpu_util"))
    # one pass over the heartbeats for the utilisation and the GPU temperature (the aggregates
    # skip the NULL temperatures of workers that report none)
    sql = (f"SELECT intDiv(toUnixTimestamp(ts), {step}) * {step} AS t, {cols}, count(), "
           f"avg(gpu_util), max(gpu_util), avg(gpu_mem_util), max(gpu_mem_util), "
           f"avg(cpu_util), max(cpu_util), avgOrNull(gpu_temp_c), maxOrNull(gpu_temp_c) "
           f"FROM {store.database}.heartbeats_raw FINAL "
           f"WHERE {scope_where(scope)} AND ts >= toDateTime64({start}, 3, 'UTC') "
           f"AND ts < toDateTime64({end}, 3, 'UTC') GROUP BY GROUPING SETS ((t), ()) ORDER BY t"
           f"{_FINAL}")
    # No FINAL: a redelivered heartbeat repeats its time and value, which changes no argMax
    # (FINAL made it 8.9 ms instead of 5.1 over a day of 12 workers' heartbeats).
    mem_sql = (
        f"SELECT sum(m), count() FROM (SELECT worker_id, argMax(gpu_mem_total_bytes, ts) AS m "
        f"FROM {store.database}.heartbeats_raw WHERE {scope_where(scope)} "
        f"AND ts >= toDateTime64({start}, 3, 'UTC') AND ts < toDateTime64({end}, 3, 'UTC') "
        f"AND gpu_mem_total_bytes IS NOT NULL GROUP BY worker_id){_FINAL}")
    rows, mem = await asyncio.gather(store.rows(sql, scope_params(scope)),
                                     store.rows(mem_sql, scope_params(scope)))
    series: dict[int, tuple[float, float, float, int]] = {}
    samples = 0
    stats: list[float | None] = [None] * 6
    temp_avg = temp_peak = None
    temps: dict[int, float] = {}
    for r in rows:
        avg, peak = r[11], r[12]
        if int(r[0]) == 0:
            if r[4]:
                samples, stats = int(r[4]), [float(v) for v in r[5:11]]
            temp_avg, temp_peak = (None if avg is None else float(avg),
                                   None if peak is None else float(peak))
        else:
            series[int(r[0])] = (float(r[1]), float(r[2]), float(r[3]), int(r[4]))
            if avg is not None:
                temps[int(r[0])] = float(avg)
    mem_total = int(mem[0][0]) if mem and mem[0][1] else None
    return Resources(samples, stats[0], stats[1], stats[2], stats[3], stats[4], stats[5],
                     series, temp_avg, temp_peak, temps, mem_total)


async def fetch_input_cache(store: AsyncStore, scope: Scope, start: int, end: int
                            ) -> tuple[int, int, int]:
    """(Σ bytes_in, cache hits, cache misses) of the request events in [start, end), whole
    minutes, from their per-minute sums (`requests_io_1m`, migration 012)."""
    rows = await store.rows(
        f"SELECT sum(bytes_in), sum(cache_hits), sum(cache_misses) "
        f"FROM {store.database}.requests_io_1m FINAL WHERE {scope_where(scope)} "
        f"AND bucket >= toDateTime({start}, 'UTC') AND bucket < toDateTime({end}, 'UTC')"
        f"{_FINAL}", scope_params(scope))
    b, hits, misses = rows[0]
    return int(b or 0), int(hits or 0), int(misses or 0)


async def fetch_sessions(store: AsyncStore, scope: Scope, lo_ms: int, hi_ms: int,
                         liveness_s: int) -> list[Session]:
    """Worker sessions overlapping [lo_ms, hi_ms], from heartbeats in [lo_ms − L, hi_ms].

    Per worker, ClickHouse sorts the heartbeat times and returns only the first, the last and
    the gaps longer than L (`scaling.sessions_from_gaps`). No FINAL: a redelivered heartbeat
    repeats a timestamp (gap 0), which changes no boundary."""
    live = liveness_s * 1000
    sql = (f"SELECT worker_id, ts_[1], ts_[-1], arrayFilter((t, d) -> d > {live}, ts_, gaps), "
           f"arrayFilter(d -> d > {live}, gaps) FROM (SELECT worker_id, "
           f"arraySort(groupArray(toUnixTimestamp64Milli(ts))) AS ts_, "
           f"arrayDifference(ts_) AS gaps FROM {store.database}.heartbeats_raw "
           f"WHERE {scope_where(scope)} AND ts >= fromUnixTimestamp64Milli({{lo:Int64}}, 'UTC') "
           f"AND ts <= fromUnixTimestamp64Milli({{hi:Int64}}, 'UTC') GROUP BY worker_id) "
           f"ORDER BY worker_id")
    rows = await store.rows(sql, {**scope_params(scope), "lo": lo_ms - live, "hi": hi_ms})
    return sessions_from_gaps(rows, live)


def load_pricing(store: Store, tenant: str, endpoint_id: int) -> Pricing:
    rows = store.rows(
        f"SELECT gpu_second_price, request_price, gb_price, monthly_budget, currency "
        f"FROM {store.database}.endpoint_pricing FINAL WHERE tenant = {{t:String}} "
        f"AND endpoint_id = {{ep:UInt64}}", {"t": tenant, "ep": endpoint_id})
    if not rows:
        return Pricing()
    g, r, b, budget, cur = rows[0]
    return Pricing(float(g), float(r), float(b), None if budget < 0 else float(budget), cur,
                   True)


def save_pricing(store: Store, tenant: str, endpoint_id: int, p: Pricing, now: float) -> None:
    store.insert("endpoint_pricing",
                 [[tenant], [endpoint_id], [p.gpu_second], [p.request], [p.gb],
                  [-1.0 if p.monthly_budget is None else p.monthly_budget], [p.currency],
                  [int(now * 1000)], [row_version(now)]],
                 ("tenant", "endpoint_id", "gpu_second_price", "request_price", "gb_price",
                  "monthly_budget", "currency", "updated_at", "version"))
