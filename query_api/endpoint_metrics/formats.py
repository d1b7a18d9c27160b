"""Endpoint metrics as CSV (RFC 4180) and Prometheus text exposition (format 0.0.4). Pure.

CSV: a header row, then one row per time point; CRLF line ends; fields holding a comma, a
double quote or a line break are quoted, inner quotes doubled (`csv.QUOTE_MINIMAL`); a missing
value is an empty field. Columns follow the selected sections.

Prometheus, written by `pipeline.core.prometheus` (each family once; the tests run `promtool`
on every output): names start with `vitals_endpoint_`. Counters hold totals over the requested
timeframe (not process lifetimes); the latency histogram is cumulative over fixed `le` bounds in
seconds, read from the sketch buckets (a value sits in the first bound ≥ its bucket's
representative, so a boundary may be off by the sketch's 1%).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.core.prometheus import Exposition
from pipeline.storage import sketch

__all__ = ["LE_BOUNDS", "csv_text", "prometheus_text"]

LE_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(header)
    for row in rows:
        w.writerow(["" if v is None else _csv_num(v) for v in row])
    return buf.getvalue()


def _csv_num(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return int(v)
    return v


class _Exposition(Exposition):
    def summary(self, name: str, help_: str, quantiles: Sequence[tuple[str, float | None]],
                total: float, count: int) -> None:
        """A summary (the only type promtool accepts a `quantile` label on); no family when
        there is no quantile (no requests)."""
        kept = [(q, v) for q, v in quantiles if v is not None]
        if not kept:
            return
        self.head(name, "summary", help_)
        for q, v in kept:
            self.sample(name, {"quantile": q}, v)
        self.sample(name + "_sum", {}, total)
        self.sample(name + "_count", {}, count)

    def latency_histogram(self, name: str, help_: str, hist: Mapping[int, int],
                          total_s: float) -> None:
        """The sketch buckets (ms) folded into the fixed `LE_BOUNDS` (seconds)."""
        counts = [0] * (len(LE_BOUNDS) + 1)
        for k, c in hist.items():
            value_s = sketch.bucket_value(k) / 1000
            i = next((i for i, le in enumerate(LE_BOUNDS) if value_s <= le), len(LE_BOUNDS))
            counts[i] += c
        buckets = list(zip((*LE_BOUNDS, math.inf), counts, strict=True))
        self.histogram(name, help_, [({}, buckets, total_s)])


def prometheus_text(doc: Mapping[str, Any], hist: Mapping[int, int]) -> str:
    """Exposition of one metrics document (`build_document` output) and its latency histogram."""
    ex = _Exposition({"endpoint_id": str(doc["endpointId"]), "timeframe": doc["timeframe"]})
    s = doc["summary"]
    p = "vitals_endpoint_"
    ex.family(p + "requests_total", "counter", "Requests in the timeframe, by outcome",
              [({"status": "success"}, s["successfulExecutions"]),
               ({"status": "error"}, s["failedExecutions"])])
    perf = doc.get("performance", {})
    if "errorRates" in perf:
        b = perf["errorRates"]["breakdown"]
        ex.family(p + "errors_total", "counter", "Failed requests in the timeframe, by class",
                  [({"class": k}, v) for k, v in b.items()])
    ex.latency_histogram(p + "latency_seconds", "Request latency in seconds over the timeframe",
                         hist, s["totalComputeTime"])
    ex.summary(p + "latency_quantile_seconds",
               "Latency percentiles over the timeframe from the merged sketch (1% relative "
               "error)", [(q, s[key]) for q, key in (("0.5", "p50Latency"),
                                                     ("0.95", "p95Latency"),
                                                     ("0.99", "p99Latency"))],
               s["totalComputeTime"], s["successfulExecutions"] + s["failedExecutions"])
    ex.family(p + "success_rate_percent", "gauge", "Successful requests, percent",
              [({}, s["successRate"])])
    ex.family(p + "cold_starts_total", "counter", "Cold starts in the timeframe",
              [({}, s["coldStartCount"])])
    ex.family(p + "queue_seconds_average", "gauge", "Average queue time in seconds",
              [({}, s["averageQueueTime"])])
    costs = doc.get("costs")
    if costs:
        ex.family(p + "cost_total", "counter", "Cost in the timeframe, by category",
                  [({"category": k, "currency": costs["currency"]}, v["amount"])
                   for k, v in costs["breakdown"].items()])
        budget = costs.get("budgetAnalysis")
        if budget:
            ex.family(p + "budget_remaining", "gauge", "Monthly budget left",
                      [({"currency": costs["currency"]}, budget["remainingBudget"])])
    usage = doc.get("usage")
    if usage:
        ex.family(p + "compute_seconds_total", "counter", "Request execution seconds",
                  [({"kind": "total"}, usage["compute"]["totalSeconds"]),
                   ({"kind": "gpu"}, usage["compute"]["gpuSeconds"])])
        ex.family(p + "transfer_bytes_total", "counter", "Bytes sent in responses",
                  [({}, usage["data"]["outputBytes"])])
        ex.family(p + "receive_bytes_total", "counter", "Bytes received with requests",
                  [({}, usage["data"].get("inputBytes"))])
        ex.family(p + "cache_requests_total", "counter", "Requests by cache outcome",
                  [({"result": "hit"}, usage["data"].get("cacheHits")),
                   ({"result": "miss"}, usage["data"].get("cacheMisses"))])
    res = doc.get("resources")
    if res:
        ex.family(p + "gpu_utilization", "gauge", "Average GPU utilisation, percent",
                  [({}, res["gpu"]["utilization"]["average"])])
        ex.family(p + "gpu_memory_utilization", "gauge", "Average GPU memory use, percent",
                  [({}, res["gpu"]["memory"]["average"])])
        ex.family(p + "cpu_utilization", "gauge", "Average CPU utilisation, percent",
                  [({}, res["cpu"]["utilization"]["average"])])
        ex.family(p + "gpu_temperature_celsius", "gauge",
                  "Average GPU temperature of the workers that report it",
                  [({}, res["gpu"].get("temperature", {}).get("average"))])
        ex.family(p + "gpu_memory_bytes", "gauge", "GPU memory of the workers that report it",
                  [({}, res["gpu"]["memory"].get("allocatedBytes"))])
        ex.family(p + "workers", "gauge", "Live workers now",
                  [({}, res["scaling"]["currentInstances"])])
        ex.family(p + "scaling_events_total", "counter", "Scaling events in the timeframe",
                  [({"action": a}, sum(1 for e in res["scaling"]["events"] if e["action"] == a))
                   for a in ("scale_up", "scale_down")])
    return ex.text()
