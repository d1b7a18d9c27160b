"""In-process counters and histograms of the pipeline itself, rendered as Prometheus text.

Metric names are fixed in `MetricName`; labels are free-form but bounded by the topics,
partitions and endpoints that exist.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import defaultdict
from typing import Literal

from pipeline.core.prometheus import Exposition

__all__ = ["MetricName", "Telemetry"]

MetricName = Literal[
    "vitals_events_consumed_total",
    "vitals_messages_consumed_total",
    "vitals_events_rejected_total",
    "vitals_dlq_messages_total",
    "vitals_insert_retries_total",
    "vitals_insert_errors_total",
    "vitals_insert_seconds",
    "vitals_api_request_seconds",
    "vitals_consumer_lag",
    "vitals_statsd_datagrams_total",
    "vitals_statsd_lines_total",
    "vitals_statsd_malformed_total",
    "vitals_statsd_dropped_total",
    "vitals_statsd_events_total",
    "vitals_metrics_series_rejected_total",
    "vitals_dlq_alert",
    "vitals_dlq_ratio",
    "vitals_processing_errors_total",
    "vitals_live_workers",
    "vitals_topic_stalled",
    "vitals_messages_isolated_total",
    "vitals_dlq_produce_errors_total",
    "vitals_ready",
]

_HELP: dict[str, tuple[str, str]] = {
    "vitals_events_consumed_total": ("counter", "Events accepted and stored, by topic"),
    "vitals_messages_consumed_total": ("counter", "Kafka messages processed, by topic"),
    "vitals_events_rejected_total": ("counter", "Events sent to the dead-letter topic, by topic"),
    "vitals_dlq_messages_total": ("counter", "Dead-letter records produced, by topic"),
    "vitals_insert_retries_total": ("counter",
                                    "ClickHouse insert attempts that failed and were retried"),
    "vitals_insert_errors_total": ("counter", "ClickHouse insert attempts refused for a reason "
                                   "other than unavailability (retried until fixed)"),
    "vitals_insert_seconds": ("histogram", "Latency of one batch insert into ClickHouse"),
    "vitals_api_request_seconds": ("histogram", "Query API request latency, by route"),
    "vitals_consumer_lag": ("gauge", "Messages behind the log end, by topic and partition"),
    "vitals_statsd_datagrams_total": ("counter", "UDP datagrams received by the DogStatsD "
                                      "listener"),
    "vitals_statsd_lines_total": ("counter", "DogStatsD lines parsed and aggregated"),
    "vitals_statsd_malformed_total": ("counter", "DogStatsD lines rejected as malformed"),
    "vitals_statsd_dropped_total": ("counter", "DogStatsD samples or datagrams dropped, by "
                                    "reason (oversized, buffer_full, kafka, kernel)"),
    "vitals_statsd_events_total": ("counter", "Aggregated metric events published to Kafka"),
    "vitals_metrics_series_rejected_total": ("counter", "Metric events dead-lettered by the "
                                             "per-tenant series limit, by tenant"),
    "vitals_dlq_alert": ("gauge", "1 while a topic's dead-letter share is above "
                         "VITALS_DLQ_ALERT_RATIO over the alert window, else 0"),
    "vitals_dlq_ratio": ("gauge", "Share of events dead-lettered over the alert window, by topic"),
    "vitals_processing_errors_total": ("counter", "Messages dead-lettered because processing "
                                       "raised, by topic"),
    "vitals_live_workers": ("gauge", "Workers with a heartbeat within the liveness timeout, "
                                     "by endpoint"),
    "vitals_topic_stalled": ("gauge", "1 while a topic cannot move on (storage away, refusing "
                             "every message, or failing), else 0"),
    "vitals_messages_isolated_total": ("counter", "Messages ClickHouse refused alone, isolated "
                                       "from their batch and dead-lettered, by topic"),
    "vitals_dlq_produce_errors_total": ("counter", "Failed attempts to produce a dead-letter "
                                        "record (retried), by topic"),
    "vitals_ready": ("gauge", "1 while a readiness check (storage, broker, agent:<topic>) is "
                     "ready, else 0; /readyz says why"),
}
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Labels = tuple[tuple[str, str], ...]


class Telemetry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._hists: dict[str, dict[Labels, list[float]]] = defaultdict(dict)

    def inc(self, name: MetricName, value: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._values[name]
            series[key] = series.get(key, 0) + value

    def set(self, name: MetricName, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[name][key] = value

    def replace(self, name: MetricName, series: list[tuple[dict[str, str], float]]) -> None:
        """Swap every series of gauge `name` at once (series that vanished disappear)."""
        fresh = {tuple(sorted(labels.items())): v for labels, v in series}
        with self._lock:
            self._values[name] = fresh

    def observe(self, name: MetricName, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            h = self._hists[name].get(key)
            if h is None:
                h = self._hists[name][key] = [0.0] * (len(_BUCKETS) + 2)
            h[bisect.bisect_left(_BUCKETS, value)] += 1
            h[-1] += value

    def value(self, name: MetricName, **labels: str) -> float:
        return self._values[name].get(tuple(sorted(labels.items())), 0)

    def render(self, extra: list[str] | None = None) -> str:
        """Prometheus text of every family that has a value (`pipeline.core.prometheus`)."""
        ex = Exposition()
        with self._lock:
            for name, (kind, help_) in _HELP.items():
                if self._values.get(name):
                    ex.family(name, kind, help_, [(dict(labels), v) for labels, v
                                                  in sorted(self._values[name].items())])
                if self._hists.get(name):
                    ex.histogram(name, help_, [
                        (dict(labels), list(zip((*_BUCKETS, math.inf), h[:-1], strict=True)),
                         h[-1]) for labels, h in sorted(self._hists[name].items())])
        ex.lines += extra or []
        return ex.text()
