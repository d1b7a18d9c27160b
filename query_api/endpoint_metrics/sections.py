"""Endpoint metrics sections computed from rollup sums. Pure: no I/O, no clock.

Inputs are `Sums` per time point (the rollup columns summed over FINAL rows, plus the p50/p95/p99
read from the merged latency histogram), heartbeat aggregates and worker sessions. Units in the
output: latencies and durations in **seconds**, rates in **percent**, money in the endpoint's
currency. Percentiles carry the sketch's relative error (1%, documented bound ≤ 2%).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from pipeline.storage import sketch
from pipeline.storage.rollup import SUM_COLUMNS

__all__ = [
    "SUM_COLUMNS",
    "Pricing",
    "Resources",
    "Sums",
    "cold_starts",
    "data_io",
    "iso",
    "latency_trend",
    "performance",
    "simple",
    "summary",
    "usage",
]

TREND_THRESHOLD_PCT = 5.0
_MIN, _MAX = SUM_COLUMNS.index("latency_min"), SUM_COLUMNS.index("latency_max")
_N_SUMS = len(SUM_COLUMNS)


@functools.lru_cache(maxsize=1 << 16)
def _bucket_value(index: int) -> float:
    """`sketch.bucket_value`, memoised: a series repeats the same few hundred sketch buckets."""
    return sketch.bucket_value(int(index))


@functools.lru_cache(maxsize=1 << 16)
def iso(ts: float) -> str:
    """UTC ISO-8601 with a Z; milliseconds only when the instant has them (memoised: a
    document repeats each point's timestamp in every series, and calls repeat the points)."""
    whole = int(ts // 1)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    ms = round((ts - whole) * 1000)
    return f"{text}.{ms:03d}Z" if ms else f"{text}Z"


@dataclass(slots=True)
class Sums:
    """Rollup sums of one time point (or of the whole window). Latency fields in ms."""

    requests: int = 0
    successes: int = 0
    failures: int = 0
    err_client: int = 0
    err_server: int = 0
    err_timeout: int = 0
    err_resource: int = 0
    err_other: int = 0
    work_units: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    latency_sum: float = 0.0
    latency_min: float | None = None
    latency_max: float | None = None
    queue_ms_sum: float = 0.0
    cold_starts: int = 0
    cold_start_ms_sum: float = 0.0
    gpu_seconds: float = 0.0
    bytes_out: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None

    @classmethod
    def total_of(cls, rows: Sequence[Sequence[Any]]) -> Sums:
        """The sums, min and max over rows laid out as `from_row` takes them (no percentiles);
        column-wise, which is much cheaper than `add` per row."""
        live = [r for r in rows if r[0]]
        if not live:
            return cls()
        cols = list(zip(*live, strict=False))
        out = cls(*(sum(c) for c in cols[: len(SUM_COLUMNS)]))
        out.latency_min = min(cols[_MIN])
        out.latency_max = max(cols[_MAX])
        return out

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Sums:
        """A row: SUM_COLUMNS values then the p50, p95, p99 sketch bucket indexes."""
        n = _N_SUMS
        s = cls(*row[:n])  # ClickHouse returns UInt64 sums as int
        if s.requests == 0:
            s.latency_min = s.latency_max = None
        else:
            value = _bucket_value
            s.p50, s.p95, s.p99 = value(row[n]), value(row[n + 1]), value(row[n + 2])
        return s

    def value(self, name: str) -> Any:
        return getattr(self, name)


_FIELDS = [f.name for f in fields(Sums)]


@dataclass(frozen=True)
class Pricing:
    gpu_second: float = 0.0
    request: float = 0.0
    gb: float = 0.0
    monthly_budget: float | None = None
    currency: str = "USD"
    configured: bool = False

    def compute_cost(self, s: Sums) -> float:
        return s.gpu_seconds * self.gpu_second

    def request_cost(self, s: Sums) -> float:
        return s.requests * self.request

    def network_cost(self, s: Sums) -> float:
        return s.bytes_out / 1e9 * self.gb

    def cost(self, s: Sums) -> float:
        return self.compute_cost(s) + self.request_cost(s) + self.network_cost(s)

    def json(self) -> dict[str, Any]:
        return {"gpuSecondPrice": self.gpu_second, "requestPrice": self.request,
                "gbTransferredPrice": self.gb, "monthlyBudget": self.monthly_budget,
                "currency": self.currency, "configured": self.configured}


@dataclass(frozen=True)
class Resources:
    """Heartbeat aggregates over the window and per point (values in percent)."""

    samples: int
    gpu_avg: float | None
    gpu_peak: float | None
    mem_avg: float | None
    mem_peak: float | None
    cpu_avg: float | None
    cpu_peak: float | None
    #: point start → (gpu, gpu memory, cpu, samples), aggregated with the query's aggregation
    series: dict[int, tuple[float, float, float, int]]
    #: GPU temperature (°C) over the heartbeats that report it: window average and peak, and
    #: per point the average; None / absent when none reports it
    temp_avg: float | None = None
    temp_peak: float | None = None
    temp_series: dict[int, float] = field(default_factory=dict)
    #: Σ over the workers that report it of their latest `gpu_mem_total_bytes` in the window
    mem_total_bytes: int | None = None


def _s(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def _pct(part: float, whole: float) -> float | None:
    return 100 * part / whole if whole else None


def _avg_latency(s: Sums) -> float | None:
    return s.latency_sum / s.requests / 1000 if s.requests else None


def latency_value(s: Sums, aggregation: str) -> float | None:
    """The point's latency under `aggregation` (seconds): avg, sum, min, max, p95, p99."""
    if not s.requests:
        return None
    if aggregation == "avg":
        return s.latency_sum / s.requests / 1000
    if aggregation == "sum":
        return s.latency_sum / 1000
    ms = {"min": s.latency_min, "max": s.latency_max, "p95": s.p95, "p99": s.p99}[aggregation]
    return None if ms is None else ms / 1000


def simple(total: Sums, active_workers: int) -> dict[str, Any]:
    """The reference's four top-level fields: requests in the window, their mean latency
    (seconds, null without requests), failed share (percent, null without requests) and the
    workers live now (the stats API's `nworkers`)."""
    return {
        "requestCount": total.requests,
        "averageResponseTime": _avg_latency(total),
        "errorRate": _pct(total.failures, total.requests),
        "activeWorkers": active_workers,
    }


def summary(total: Sums, pricing: Pricing) -> dict[str, Any]:
    return {
        "totalExecutions": total.requests,
        "successfulExecutions": total.successes,
        "failedExecutions": total.failures,
        "successRate": _pct(total.successes, total.requests),
        "totalCost": pricing.cost(total),
        "averageLatency": _avg_latency(total),
        "p50Latency": _s(total.p50),
        "p95Latency": _s(total.p95),
        "p99Latency": _s(total.p99),
        "totalComputeTime": total.latency_sum / 1000,
        "averageQueueTime": total.queue_ms_sum / total.requests / 1000 if total.requests else None,
        "coldStartCount": total.cold_starts,
        "coldStartRate": _pct(total.cold_starts, total.requests),
    }


def _change(last: float | None, prev: float | None) -> float | None:
    if last is None or not prev:
        return None
    return 100 * (last - prev) / prev


def latency_trend(last: tuple[int, float], prev: tuple[int, float]) -> dict[str, Any]:
    """Trend of average latency between two periods given as (requests, latency_sum ms).

    changePercent = 100·(last − prev)/prev; |change| < 5% is stable, higher latency degrading,
    lower improving; null trend and change when either period has no requests.
    """
    avg_last = last[1] / last[0] / 1000 if last[0] else None
    avg_prev = prev[1] / prev[0] / 1000 if prev[0] else None
    change = _change(avg_last, avg_prev)
    trend = None
    if change is not None:
        trend = ("stable" if abs(change) < TREND_THRESHOLD_PCT
                 else "degrading" if change > 0 else "improving")
    return {"average": avg_last, "previousAverage": avg_prev, "trend": trend,
            "changePercent": change}


def performance(points: dict[int, Sums], step: int, trends: dict[str, Any], sections: set[str],
                aggregation: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ordered = sorted(points.items())
    stamps = [iso(t) for t, _ in ordered]
    if "performance" in sections:
        latency: list[dict[str, Any]] = []
        series: list[dict[str, Any]] = []
        # Points are built inline (not through _s/_avg_latency/_pct): a day at 1m is 1,440.
        for stamp, (_, s) in zip(stamps, ordered, strict=True):
            n = s.requests
            if n:
                p50, p95, p99 = s.p50, s.p95, s.p99
                latency.append({
                    "timestamp": stamp, "value": latency_value(s, aggregation),
                    "avg": s.latency_sum / n / 1000,
                    "p50": None if p50 is None else p50 / 1000,
                    "p95": None if p95 is None else p95 / 1000,
                    "p99": None if p99 is None else p99 / 1000,
                    "min": _s(s.latency_min), "max": _s(s.latency_max), "count": n})
            else:
                latency.append({"timestamp": stamp, "value": None, "avg": None, "p50": None,
                                "p95": None, "p99": None, "min": None, "max": None,
                                "count": 0})
            series.append({"timestamp": stamp, "requestsPerSecond": n / step,
                           "tokensPerSecond": (s.tokens_in + s.tokens_out) / step,
                           "itemsProcessed": s.work_units})
        out["latency"] = {
            "unit": "seconds",
            "relativeErrorBound": sketch.ALPHA,
            "aggregation": aggregation,
            "timeSeries": latency,
            "trends": trends,
        }
        peak = max(series, key=lambda p: p["requestsPerSecond"], default=None)
        out["throughput"] = {"timeSeries": series, "peak": None if peak is None else {
            "requestsPerSecond": peak["requestsPerSecond"], "timestamp": peak["timestamp"]}}
    if "errors" in sections:
        total = Sums()
        for _, s in ordered:
            total.err_client += s.err_client
            total.err_server += s.err_server
            total.err_timeout += s.err_timeout
            total.err_resource += s.err_resource
            total.err_other += s.err_other
            total.failures += s.failures
            total.requests += s.requests
        errors: list[dict[str, Any]] = []
        for stamp, (_, s) in zip(stamps, ordered, strict=True):
            n = s.requests
            if n:  # _pct inline
                errors.append({"timestamp": stamp, "errorRate": 100 * s.failures / n,
                               "timeoutRate": 100 * s.err_timeout / n,
                               "resourceErrorRate": 100 * s.err_resource / n,
                               "userErrorRate": 100 * s.err_client / n,
                               "serverErrorRate": 100 * s.err_server / n, "errors": s.failures})
            else:
                errors.append({"timestamp": stamp, "errorRate": None, "timeoutRate": None,
                               "resourceErrorRate": None, "userErrorRate": None,
                               "serverErrorRate": None, "errors": s.failures})
        out["errorRates"] = {
            "timeSeries": errors,
            "breakdown": {"4xx": total.err_client, "5xx": total.err_server,
                          "timeouts": total.err_timeout,
                          "resourceExhausted": total.err_resource, "other": total.err_other},
            "errorRate": _pct(total.failures, total.requests),
        }
    return out


def by_hour(points: dict[int, Sums], step: int) -> dict[int, tuple[int, float]]:
    """Hour start → (requests, latency_sum ms), from points no wider than an hour."""
    hours: dict[int, tuple[int, float]] = {}
    for t, s in points.items():
        h = t - t % 3600
        r, lat = hours.get(h, (0, 0.0))
        hours[h] = (r + s.requests, lat + s.latency_sum)
    return dict(sorted(hours.items()))


def usage(total: Sums, hours: dict[int, tuple[int, float]], timeframe_s: int,
          worker_seconds: float | None) -> dict[str, Any]:
    by_hod: dict[int, int] = {}
    by_day: dict[int, int] = {}
    for h, (r, _) in hours.items():
        by_hod[h % 86400 // 3600] = by_hod.get(h % 86400 // 3600, 0) + r
        by_day[h - h % 86400] = by_day.get(h - h % 86400, 0) + r
    weekday = [r for d, r in by_day.items() if time.gmtime(d).tm_wday < 5]
    weekend = [r for d, r in by_day.items() if time.gmtime(d).tm_wday >= 5]
    peak = max(by_hod, key=lambda k: (by_hod[k], -k), default=None)
    low = min(by_hod, key=lambda k: (by_hod[k], k), default=None)
    busy = total.latency_sum / 1000
    idle = None if worker_seconds is None else max(0.0, worker_seconds - busy)
    return {
        "requests": {
            "total": total.requests, "successful": total.successes, "failed": total.failures,
            "byHour": [{"hour": iso(h), "count": r,
                        "avgLatency": lat / r / 1000 if r else None}
                       for h, (r, lat) in hours.items()],
            "patterns": {
                "peakHour": None if peak is None else f"{peak:02d}:00-{(peak + 1) % 24:02d}:00",
                "lowestHour": None if low is None else f"{low:02d}:00-{(low + 1) % 24:02d}:00",
                "weekdayAverage": sum(weekday) / len(weekday) if weekday else None,
                "weekendAverage": sum(weekend) / len(weekend) if weekend else None,
            },
        },
        "compute": {
            "totalSeconds": busy,
            "gpuSeconds": total.gpu_seconds,
            "cpuSeconds": max(0.0, busy - total.gpu_seconds),
            "workerSeconds": worker_seconds,
            "idleTime": idle,
            "utilizationRate": (_pct(busy, worker_seconds) if worker_seconds else None),
        },
        "data": {
            "outputBytes": total.bytes_out,
            "egressBytesPerHour": total.bytes_out / (timeframe_s / 3600),
            "tokensIn": total.tokens_in,
            "tokensOut": total.tokens_out,
        },
    }


def _rate_text(bytes_: float, hours: float) -> str:
    """The reference's bandwidth text: bytes per hour in decimal units ("142.5 MB/hour")."""
    per_hour = bytes_ / hours
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if per_hour >= size:
            return f"{per_hour / size:.1f} {unit}/hour"
    return f"{per_hour:.0f} B/hour"


def data_io(total: Sums, input_bytes: int, hits: int, misses: int,
            timeframe_s: int) -> dict[str, Any]:
    """`usage.data` additions from the optional request fields: input bytes, cache outcomes
    (rate = 100 · hits / (hits + misses), null when no request reported one) and the
    reference's bandwidth texts."""
    hours = timeframe_s / 3600
    return {
        "inputBytes": input_bytes,
        "ingressBytesPerHour": input_bytes / hours,
        "cacheHits": hits,
        "cacheMisses": misses,
        "cacheHitRate": _pct(hits, hits + misses),
        "bandwidth": {"ingress": _rate_text(input_bytes, hours),
                      "egress": _rate_text(total.bytes_out, hours)},
    }


def cold_starts(total: Sums, pricing: Pricing) -> dict[str, Any]:
    seconds = total.cold_start_ms_sum / 1000
    rate = _pct(total.cold_starts, total.requests)
    added = seconds / total.requests if total.requests else None
    cost = seconds * pricing.gpu_second
    experience = (None if rate is None else "minimal" if rate < 1
                  else "moderate" if rate < 5 else "severe")
    recommended = rate is not None and rate > 1
    return {
        "count": total.cold_starts,
        "rate": rate,
        "averageDuration": seconds / total.cold_starts if total.cold_starts else None,
        "totalDuration": seconds,
        "impact": {"latencyIncrease": added, "costIncrease": cost,
                   "userExperience": experience},
        "optimization": {"warmPoolRecommended": recommended,
                         "estimatedImprovement": {
                             "latencyReduction": added if recommended else 0.0,
                             "costReduction": cost if recommended else 0.0}},
    }
