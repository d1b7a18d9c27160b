"""Endpoint and autogroup stats (Vast.ai `/get_endpoint_stats/` semantics) from ClickHouse.

Definitions, at instant t with trailing window W and liveness timeout T:
- totreqs: requests with event time before t (current mode: all requests stored);
- reqrate: requests in [t-W, t) / W;  curload: work units in [t-W, t) / W — the `work_units`
  of request events plus the `new_load` heartbeats report (the work a vast.ai pyworker says
  arrived since its previous report; its request events carry no work units, so nothing counts
  twice);
- reliable: successes / requests in [t-W, t), null when there were no requests;
- nworkers: workers whose latest heartbeat at or before t is later than t - T;
- capacity: sum of `max_perf` from those workers' latest heartbeats.
Rollup rows are read with FINAL, so redelivered messages count once.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from pipeline.storage.clickhouse import AsyncStore
from query_api.entities import Scope
from query_api.entities_store import scope_params, scope_where
from query_api.windows import series_resolution, split_range

__all__ = ["METRICS", "current_load", "current_stats", "live_workers", "timeseries"]

METRICS = ("nworkers", "totreqs", "curload", "capacity", "reliable", "reqrate")



def _union(db: str, scope: Scope, pieces: list[tuple[str, int, int]], cols: str) -> str:
    parts = [
        f"SELECT {cols} FROM {db}.{table} FINAL WHERE {scope_where(scope)} "
        f"AND bucket >= toDateTime({lo}, 'UTC') AND bucket < toDateTime({hi}, 'UTC')"
        for table, lo, hi in pieces
    ]
    return " UNION ALL ".join(parts)


async def _window_sums(store: AsyncStore, scope: Scope, lo: int, hi: int) -> tuple[int, int, float]:
    """(requests, successes, work units) over [lo, hi)."""
    pieces = split_range(lo, hi)
    if not pieces:
        return 0, 0, 0.0
    inner = _union(store.database, scope, pieces,
                   "sum(requests) AS r, sum(successes) AS s, sum(work_units) AS w")
    rows = await store.rows(f"SELECT sum(r), sum(s), sum(w) FROM ({inner})", scope_params(scope))
    r, s, w = rows[0]
    return int(r or 0), int(s or 0), float(w or 0.0)


async def _reported_load(store: AsyncStore, scope: Scope, lo: int, hi: int) -> float:
    """Σ `new_load` of heartbeats with ts in [lo, hi) (seconds)."""
    sql = (f"SELECT sum(new_load) FROM {store.database}.heartbeats_raw FINAL "
           f"WHERE {scope_where(scope)} AND ts >= toDateTime64({{lo:Int64}}, 3, 'UTC') "
           f"AND ts < toDateTime64({{hi:Int64}}, 3, 'UTC')")
    rows = await store.rows(sql, {**scope_params(scope), "lo": lo, "hi": hi})
    return float(rows[0][0] or 0.0)


async def _reported_load_buckets(store: AsyncStore, scope: Scope, lo: int, hi: int,
                                 width: int) -> dict[int, float]:
    """Bucket start (aligned like the rollups) → Σ `new_load` of heartbeats in [lo, hi)."""
    sql = (f"SELECT intDiv(toUnixTimestamp(ts), {width}) * {width} AS b, sum(new_load) "
           f"FROM {store.database}.heartbeats_raw FINAL WHERE {scope_where(scope)} "
           f"AND ts >= toDateTime64({{lo:Int64}}, 3, 'UTC') "
           f"AND ts < toDateTime64({{hi:Int64}}, 3, 'UTC') AND new_load > 0 GROUP BY b")
    rows = await store.rows(sql, {**scope_params(scope), "lo": lo, "hi": hi})
    return {int(b): float(v) for b, v in rows}


async def _total_requests(store: AsyncStore, scope: Scope, before: int | None) -> int:
    db = store.database
    if before is None:
        sql = f"SELECT sum(requests) FROM {db}.requests_1h FINAL WHERE {scope_where(scope)}"
        rows = await store.rows(sql, scope_params(scope))
        return int(rows[0][0] or 0)
    r, _, _ = await _window_sums(store, scope, 0, before)
    return r


async def live_workers(store: AsyncStore, scope: Scope, at_ms: int,
                       timeout_s: int) -> tuple[int, float]:
    """(nworkers, capacity) at `at_ms`: workers whose latest heartbeat at or before it is
    younger than the timeout, and the sum of their latest `max_perf`."""
    db = store.database
    sql = (f"SELECT count(), sum(perf) FROM (SELECT worker_id, argMax(max_perf, ts) AS perf "
           f"FROM {db}.heartbeats_raw WHERE {scope_where(scope)} "
           f"AND ts > fromUnixTimestamp64Milli({{lo:Int64}}, 'UTC') "
           f"AND ts <= fromUnixTimestamp64Milli({{hi:Int64}}, 'UTC') GROUP BY worker_id)")
    rows = await store.rows(sql, {**scope_params(scope), "lo": at_ms - timeout_s * 1000,
                                  "hi": at_ms})
    n, cap = rows[0]
    return int(n or 0), float(cap or 0.0)


async def current_load(store: AsyncStore, scope: Scope, *, now: float, window_s: int) -> float:
    """`curload` at `now`: work units per second over the trailing window."""
    t = math.floor(now)
    (_, _, work), reported = await asyncio.gather(_window_sums(store, scope, t - window_s, t),
                                                  _reported_load(store, scope, t - window_s, t))
    return (work + reported) / window_s


async def current_stats(store: AsyncStore, scope: Scope, *, now: float, window_s: int,
                        liveness_s: int) -> dict[str, Any]:
    t = math.floor(now)
    (requests, successes, work), reported, (nworkers, capacity), total = await asyncio.gather(
        _window_sums(store, scope, t - window_s, t),
        _reported_load(store, scope, t - window_s, t),
        live_workers(store, scope, int(now * 1000), liveness_s),
        _total_requests(store, scope, None))
    work += reported
    return {
        "capacity": capacity,
        "curload": work / window_s,
        "nworkers": nworkers,
        "reliable": successes / requests if requests else None,
        "reqrate": requests / window_s,
        "totreqs": total,
    }


async def _bucket_series(store: AsyncStore, scope: Scope, lo: int, hi: int,
                         width: int) -> dict[int, tuple[int, int, float]]:
    table = {1: "requests_1s", 60: "requests_1m", 3600: "requests_1h"}[width]
    sql = (f"SELECT toUnixTimestamp(bucket), sum(requests), sum(successes), sum(work_units) "
           f"FROM {store.database}.{table} FINAL WHERE {scope_where(scope)} "
           f"AND bucket >= toDateTime({lo}, 'UTC') AND bucket < toDateTime({hi}, 'UTC') "
           f"GROUP BY bucket")
    rows = await store.rows(sql, scope_params(scope))
    return {int(b): (int(r), int(s), float(w)) for b, r, s, w in rows}


async def timeseries(store: AsyncStore, scope: Scope, metric: str, points: list[int], *,
                     step: int, window_s: int, liveness_s: int) -> list[float | None]:
    """The metric as it stood at each instant in `points` (evenly spaced by `step`)."""
    if not points:
        return []
    if metric in ("nworkers", "capacity"):
        return await _worker_series(store, scope, metric, points, step, liveness_s)
    t1, last = points[0], points[-1]
    width = series_resolution(t1, window_s, step)
    lo = t1 - window_s
    buckets = await _bucket_series(store, scope, lo, last, width)
    if metric == "curload":
        for b, load in (await _reported_load_buckets(store, scope, lo, last, width)).items():
            r, s, w = buckets.get(b, (0, 0, 0.0))
            buckets[b] = (r, s, w + load)
    # prefix[k] = sums over buckets [lo, lo + k*width)
    n = (last - lo) // width
    pr = [0] * (n + 1)
    ps = [0] * (n + 1)
    pw = [0.0] * (n + 1)
    for k in range(n):
        r, s, w = buckets.get(lo + k * width, (0, 0, 0.0))
        pr[k + 1], ps[k + 1], pw[k + 1] = pr[k] + r, ps[k] + s, pw[k] + w
    base = await _total_requests(store, scope, lo) if metric == "totreqs" else 0
    out: list[float | None] = []
    for p in points:
        b = (p - lo) // width
        a = (p - window_s - lo) // width
        if metric == "totreqs":
            out.append(float(base + pr[b]))
        elif metric == "reqrate":
            out.append((pr[b] - pr[a]) / window_s)
        elif metric == "curload":
            out.append((pw[b] - pw[a]) / window_s)
        else:  # reliable
            reqs = pr[b] - pr[a]
            out.append((ps[b] - ps[a]) / reqs if reqs else None)
    return out


async def _worker_series(store: AsyncStore, scope: Scope, metric: str, points: list[int],
                         step: int, liveness_s: int) -> list[float | None]:
    t1, last = points[0], points[-1]
    # idx = first sample point at or after the heartbeat: ts <= p_k  <=>  idx <= k.
    sql = (f"SELECT worker_id, greatest(0, toInt64(ceil((toUnixTimestamp64Milli(ts) - "
           f"{t1 * 1000}) / {step * 1000}))) AS idx, max(toUnixTimestamp64Milli(ts)), "
           f"argMax(max_perf, ts) FROM {store.database}.heartbeats_raw WHERE {scope_where(scope)} "
           f"AND ts > fromUnixTimestamp64Milli({{lo:Int64}}, 'UTC') "
           f"AND ts <= fromUnixTimestamp64Milli({{hi:Int64}}, 'UTC') "
           f"GROUP BY worker_id, idx ORDER BY worker_id, idx")
    rows = await store.rows(sql, {**scope_params(scope), "lo": (t1 - liveness_s) * 1000,
                                  "hi": last * 1000})
    count = [0.0] * len(points)
    cap = [0.0] * len(points)
    by_worker: dict[int, list[tuple[int, int, float]]] = {}
    for worker, idx, ts_ms, perf in rows:
        by_worker.setdefault(int(worker), []).append((int(idx), int(ts_ms), float(perf)))
    for groups in by_worker.values():
        g = 0
        latest: tuple[int, float] | None = None
        for k, p in enumerate(points):
            while g < len(groups) and groups[g][0] <= k:
                latest = (groups[g][1], groups[g][2])
                g += 1
            if latest is not None and latest[0] > (p - liveness_s) * 1000:
                count[k] += 1
                cap[k] += latest[1]
    return list(count) if metric == "nworkers" else list(cap)
