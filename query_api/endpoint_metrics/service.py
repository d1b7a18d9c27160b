"""Assemble one endpoint's metrics document: which reads run for which sections, and the CSV
rows. The sections themselves are computed by the pure modules `endpoint_metrics`,
`metrics_costs` and `scaling`; the reads live in `metrics_store`."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from pipeline.storage.clickhouse import AsyncStore
from query_api.endpoint_metrics import costs as mc
from query_api.endpoint_metrics import sections as em
from query_api.endpoint_metrics import store as ms
from query_api.endpoint_metrics.insights import insights
from query_api.endpoint_metrics.params import MetricsQuery, Window, window_for
from query_api.endpoint_metrics.scaling import VAST_DEFAULTS, scaling, target_instances
from query_api.endpoint_metrics.series_cache import SeriesCache
from query_api.entities import Scope
from query_api.vast.store import current_load, live_workers

T = TypeVar("T")

__all__ = ["Computed", "build_document", "csv_table"]


@dataclass(frozen=True)
class Computed:
    """A metrics document plus what the other formats need."""

    doc: dict[str, Any]
    hist: dict[int, int]
    points: dict[int, em.Sums]
    pricing: em.Pricing
    resource_points: dict[int, tuple[float, float, float, int]]
    instances: list[int]
    _rendered: dict[tuple[bool, Any], bytes] = field(default_factory=dict, init=False,
                                                     repr=False, compare=False)

    def json(self, cached: bool) -> bytes:
        """The JSON answer (the document with `cached`), rendered once per flag and endpoint
        name: a 1 h document at 1 m is ~42 KB and takes ~0.3-0.8 ms to render, and a cached
        document is served many times a second."""
        key = (cached, self.doc.get("endpoint"))
        out = self._rendered.get(key)
        if out is None:
            out = self._rendered[key] = orjson.dumps({**self.doc, "cached": cached},
                                                     option=orjson.OPT_NON_STR_KEYS)
        return out


def _trends(hours: dict[int, em.Sums], h: int) -> tuple[dict[str, Any], em.Sums, em.Sums]:
    def total(lo: int, hi: int) -> em.Sums:
        out = em.Sums()
        for t in range(lo, hi, 3600):
            s = hours.get(t)
            if s is not None:
                for name in ("requests", "latency_sum", "gpu_seconds", "bytes_out"):
                    setattr(out, name, getattr(out, name) + getattr(s, name))
        return out

    last_h, prev_h = total(h - 3600, h), total(h - 7200, h - 3600)
    last_d, prev_d = total(h - 86400, h), total(h - 172800, h - 86400)
    trends = {
        "hourly": {**em.latency_trend((last_h.requests, last_h.latency_sum),
                                      (prev_h.requests, prev_h.latency_sum)),
                   "period": "last complete hour vs the hour before"},
        "daily": {**em.latency_trend((last_d.requests, last_d.latency_sum),
                                     (prev_d.requests, prev_d.latency_sum)),
                  "period": "last complete 24 h vs the 24 h before"},
    }
    return trends, last_d, prev_d


def _resource_series(res: em.Resources, points: list[int], instances: list[int]
                     ) -> list[dict[str, Any]]:
    out = []
    for p, n in zip(points, instances, strict=True):
        r = res.series.get(p)
        out.append({"timestamp": em.iso(p), "utilization": r[0] if r else None,
                    "memoryUsage": r[1] if r else None, "cpuUtilization": r[2] if r else None,
                    "temperature": res.temp_series.get(p), "instances": n})
    return out


async def _hours(store: AsyncStore, scope: Scope, lo: int, hi: int, now: float,
                 series: SeriesCache | None) -> dict[int, em.Sums]:
    """Every hour in [lo, hi) (hour-aligned), one point per 1h rollup bucket through the series
    cache: closed hours rarely change, so a call usually reads only their rows-written
    counters. Feeds the trends (the 48 complete hours before now) and, at 1d granularity, the
    hourly usage."""
    points, _, _ = await ms.fetch_series(store, scope, lo, hi, 3600, series, now)
    return points


async def build_document(store: AsyncStore, scope: Scope, name: str, q: MetricsQuery,
                         now: float, liveness_s: int, series: SeriesCache | None = None,
                         stats_window_s: int = 60) -> Computed:
    """The document of `scope` for `q` at `now`; `series` keeps per-bucket rollup reads
    between calls (series_cache.py), None reads every bucket. `stats_window_s` is the
    trailing window of the load `scaling.targetInstances` follows (the stats API's
    curload)."""
    win: Window = window_for(q, now)
    sections = set(q.sections)
    hour_now = int(now) // 3600 * 3600
    want_hours = bool(sections & {"performance", "costs"})
    want_sessions = bool(sections & {"usage", "resources", "costs"})
    want_usage = "usage" in sections
    want_resources = "resources" in sections

    async def when(wanted: bool, fetch: Callable[[], Awaitable[T]]) -> T | None:
        return await fetch() if wanted else None

    async def usage_reads() -> tuple[dict[int, em.Sums] | None, tuple[int, int, int]]:
        """The usage section's own reads: hourly sums (when a point spans hours) and the
        optional fields' sums."""
        hourly, io = await asyncio.gather(
            when(win.step > 3600, lambda: _hours(store, scope, win.start, win.end, now, series)),
            ms.fetch_input_cache(store, scope, win.start, win.end))
        return hourly, io

    async def resource_reads() -> tuple[em.Resources, float]:
        """The resources section's reads: heartbeat utilisation and the scaling rule's load."""
        return await asyncio.gather(
            ms.fetch_resources(store, scope, win.start, win.end, win.step, q.aggregation),
            current_load(store, scope, now=now, window_s=stats_window_s))

    # Independent reads run concurrently (the store has a pool of sessions).
    live = asyncio.ensure_future(live_workers(store, scope, int(now * 1000), liveness_s))
    try:
        (pricing, (points, total, hist), hours_read, sessions, usage_read,
         res_read) = await asyncio.gather(
            store.call(lambda s: ms.load_pricing(s, scope.tenant, scope.endpoint_id)),
            ms.fetch_series(store, scope, win.start, win.end, win.step, series, now),
            when(want_hours, lambda: _hours(store, scope, hour_now - 172800, hour_now, now,
                                            series)),
            when(want_sessions, lambda: ms.fetch_sessions(store, scope, win.start * 1000,
                                                          win.horizon_ms, liveness_s)),
            when(want_usage, usage_reads),
            when(want_resources, resource_reads),
        )
    except BaseException:
        live.cancel()
        raise
    active, capacity = await live
    doc: dict[str, Any] = {
        "endpointId": str(scope.endpoint_id), "endpoint": name, "timeframe": q.timeframe,
        "granularity": q.granularity, "aggregation": q.aggregation,
        "metrics": list(q.sections), "generatedAt": em.iso(now),
        "window": {"start": em.iso(win.start), "end": em.iso(win.end)},
        **em.simple(total, active),
        "summary": em.summary(total, pricing),
    }
    hours: dict[int, em.Sums] = hours_read or {}
    trends, last_day, prev_day = _trends(hours, hour_now)
    sc = None
    if sessions is not None:
        sc = scaling(sessions, win.start * 1000, win.horizon_ms,
                     [p * 1000 for p in win.points])
    if sections & {"performance", "errors"}:
        doc["performance"] = em.performance(points, win.step, trends, sections, q.aggregation)
    if "performance" in sections:
        doc["coldStarts"] = em.cold_starts(total, pricing)
    if usage_read is not None:
        hourly_read, io = usage_read
        if win.step <= 3600:
            by_hour = em.by_hour(points, win.step)
        else:
            hourly = hourly_read or {}
            by_hour = {t: (hourly[t].requests, hourly[t].latency_sum) if t in hourly else (0, 0.0)
                       for t in range(win.start, win.end, 3600)}
        doc["usage"] = em.usage(total, by_hour, q.timeframe_s,
                                sc.worker_seconds if sc else None)
        doc["usage"]["data"].update(em.data_io(total, *io, q.timeframe_s))
    if "costs" in sections:
        budget_json = None
        if pricing.monthly_budget is not None:
            m0, m1 = mc.month_bounds(now)
            mtd = await ms.fetch_sums(store, scope, m0, int(now) + 1)
            used = pricing.cost(mtd[0]) if 0 in mtd else 0.0
            budget_json = mc.budget(pricing, mc.Budget(m0, m1, used, now))
        doc["costs"] = mc.costs(points, total, pricing,
                                mc.daily_cost_trend(last_day, prev_day, pricing), budget_json,
                                sc.worker_seconds if sc else None)
    res_points: dict[int, tuple[float, float, float, int]] = {}
    if "resources" in sections:
        assert sc is not None and res_read is not None
        res, load = res_read
        target = target_instances(load, capacity, active)
        res_points = res.series
        doc["resources"] = {
            "heartbeatSamples": res.samples,
            "aggregation": q.aggregation,
            "gpu": {
                "utilization": {
                    "average": res.gpu_avg, "peak": res.gpu_peak,
                    "timeSeries": _resource_series(res, win.points, sc.at_points),
                },
                "memory": {"average": res.mem_avg, "peak": res.mem_peak,
                           "allocatedBytes": res.mem_total_bytes,
                           "allocated": (None if res.mem_total_bytes is None
                                         else f"{res.mem_total_bytes / 2**30:g}GB")},
                "temperature": {"average": res.temp_avg, "peak": res.temp_peak,
                                "unit": "celsius"},
                "performance": {"efficiency": _gpu_efficiency(total.gpu_seconds,
                                                              sc.worker_seconds)},
            },
            "cpu": {"utilization": {"average": res.cpu_avg, "peak": res.cpu_peak}},
            "scaling": {"events": sc.events, "truncated": sc.truncated,
                        "currentInstances": sc.current, "peakInstances": sc.peak,
                        "targetInstances": target, "autoScalingEnabled": False,
                        "targetRule": {"load": load, "capacity": capacity,
                                       "liveWorkers": active,
                                       **dataclasses.asdict(VAST_DEFAULTS)},
                        "workerSeconds": sc.worker_seconds,
                        "livenessTimeoutSeconds": liveness_s},
        }
    doc["insights"] = insights(doc)
    return Computed(doc, hist, points, pricing, res_points, sc.at_points if sc else [])


def _gpu_efficiency(gpu_seconds: float, worker_seconds: float | None) -> float | None:
    """Share of live worker time that requests were charged GPU time for, in percent (above 100
    when a worker serves requests concurrently); None without live worker time."""
    return 100 * gpu_seconds / worker_seconds if worker_seconds else None


def csv_table(c: Computed, q: MetricsQuery) -> tuple[list[str], list[list[Any]]]:
    """Header and one row per time point; columns follow the selected sections. Every column
    name appears once: the latency columns are the same whatever `aggregation` is (each of avg,
    p50, p95, p99, min, max and sum has its own column), and the resource columns name the
    aggregation they were combined with."""
    sections = set(q.sections)
    header = ["timestamp", "endpoint_id", "endpoint", "requests", "successes", "failures"]
    if "performance" in sections:
        header += ["latency_avg_s", "latency_p50_s", "latency_p95_s", "latency_p99_s",
                   "latency_min_s", "latency_max_s", "latency_sum_s", "requests_per_second",
                   "tokens_per_second", "items_processed", "cold_starts"]
    if "errors" in sections:
        header += ["error_rate_pct", "errors_4xx", "errors_5xx", "timeouts",
                   "resource_exhausted", "errors_other"]
    if "usage" in sections:
        header += ["compute_s", "gpu_s", "bytes_out"]
    if "costs" in sections:
        header += ["cost", "compute_cost", "request_cost", "network_cost"]
    if "resources" in sections:
        header += [f"gpu_util_{q.aggregation}", f"gpu_mem_util_{q.aggregation}",
                   f"cpu_util_{q.aggregation}", "instances"]
    step = q.step_s
    rows = []
    p = c.pricing
    for i, (t, s) in enumerate(sorted(c.points.items())):
        row: list[Any] = [em.iso(t), c.doc["endpointId"], c.doc["endpoint"], s.requests,
                          s.successes, s.failures]
        if "performance" in sections:
            ms_ = [s.latency_sum / s.requests if s.requests else None, s.p50, s.p95, s.p99,
                   s.latency_min, s.latency_max, s.latency_sum if s.requests else None]
            row += [*(None if v is None else v / 1000 for v in ms_),
                    s.requests / step, (s.tokens_in + s.tokens_out) / step, s.work_units,
                    s.cold_starts]
        if "errors" in sections:
            row += [100 * s.failures / s.requests if s.requests else None, s.err_client,
                    s.err_server, s.err_timeout, s.err_resource, s.err_other]
        if "usage" in sections:
            row += [s.latency_sum / 1000, s.gpu_seconds, s.bytes_out]
        if "costs" in sections:
            row += [p.cost(s), p.compute_cost(s), p.request_cost(s), p.network_cost(s)]
        if "resources" in sections:
            r = c.resource_points.get(t)
            row += [*(r[:3] if r else (None, None, None)),
                    c.instances[i] if i < len(c.instances) else None]
        rows.append(row)
    return header, rows
