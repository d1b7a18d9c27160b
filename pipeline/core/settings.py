"""The one settings object.

`Settings.from_env()` is called once, at the entry point (the CLI), and the frozen result is
passed down. No other module reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.core.errors import VitalsError
from pipeline.core.faults import FaultSpec, parse_fault
from pipeline.storage import retention as _retention
from pipeline.storage.retention import Retention

__all__ = ["NO_AGE_LIMIT_MS", "TOPIC_MAX_MESSAGE_BYTES", "Settings", "SettingsError", "TopicNames"]

#: `Settings.max_age_ms` of a family without retention: more than the epoch's age in ms, so no
#: event is ever too old under it.
NO_AGE_LIMIT_MS = 1 << 62

TOPIC_KINDS = ("requests", "heartbeats", "task-events", "metrics", "jobs")


#: Largest Kafka message the local broker and Vitals' topics accept: the bound of
#: VITALS_MAX_MESSAGE_BYTES, and four times its default, so that an oversized envelope reaches
#: the worker and is dead-lettered with its reason instead of failing at the producer.
TOPIC_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class SettingsError(VitalsError, ValueError):
    """An environment variable holds a value Vitals cannot use; the message names it."""


@dataclass(frozen=True)
class TopicNames:
    """Kafka topic names, each `<prefix><kind>`; every topic has a `<name>.dlq` twin."""

    prefix: str = ""

    def topic(self, kind: str) -> str:
        if kind not in TOPIC_KINDS:
            raise ValueError(f"unknown topic kind {kind!r}; allowed: {', '.join(TOPIC_KINDS)}")
        return f"{self.prefix}{kind}"

    def dlq(self, kind: str) -> str:
        return f"{self.topic(kind)}.dlq"

    @property
    def requests(self) -> str:
        return self.topic("requests")

    @property
    def heartbeats(self) -> str:
        return self.topic("heartbeats")

    def all(self) -> list[str]:
        return [name for kind in TOPIC_KINDS for name in (self.topic(kind), self.dlq(kind))]


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the embedded defaults `vitals up` runs on.

    Environment variables (all optional):

    - `KAFKA_BOOTSTRAP`: broker list; unset means `vitals up` starts a local broker.
    - `VITALS_KAFKA_PORT`: port of that local broker (default 9092) when it is free, else a
      free loopback port; 0 always takes a free one. `vitals up` prints the address it got.
    - `CLICKHOUSE_DSN`: `chdb://<path>` (embedded, default `chdb://<data dir>/clickhouse`)
      or `http(s)://user:pass@host:port`.
    - `CLICKHOUSE_DATABASE`: database holding the Vitals tables (default `vitals`).
    - `VITALS_DATA_DIR`: local state: embedded ClickHouse, local broker, admin key
      (default `./.data`).
    - `VITALS_TOPIC_PREFIX`, `VITALS_TOPIC_PARTITIONS`: topic naming and partition count.
    - `VITALS_API_HOST`, `VITALS_API_PORT`: where the query API listens (default 127.0.0.1:8000).
    - `VITALS_PROBE_PORT`: a port on the API host where a process of its own answers `/healthz`
      and `/readyz` within milliseconds however busy the API is (query_api/probe_server.py;
      default off; 0 picks a free port). Point an orchestrator's probes at it.
    - `VITALS_STATS_WINDOW_S`: trailing window of reqrate/curload/reliable (default 60).
    - `VITALS_LIVENESS_TIMEOUT_S`: a worker is live while its last heartbeat is younger
      (default 60).
    - `VITALS_MAX_FUTURE_S`: events stamped further in the future are rejected (default 300).
    - `VITALS_RETENTION_<FAMILY>_DAYS`: days each data family keeps its rows, or `none` (keep
      until deleted); see `pipeline.storage.retention`. Families and defaults: REQUESTS (raw request
      events) 30, REQUESTS_1S 30, REQUESTS_1M 400, REQUESTS_1H 400, HEARTBEATS 30,
      TASK_EVENTS none, METRICS 30, JOBS 400, DEAD_LETTERS 30. Events older than their kind's
      retention are refused (HTTP ingest, `vitals publish`) or dead-lettered (worker).
      `VITALS_RETENTION_DAYS`, the single setting of earlier versions, still sets REQUESTS,
      REQUESTS_1S, HEARTBEATS, METRICS and DEAD_LETTERS where their own variable is unset.
    - `VITALS_INGEST_TIMEOUT_S`: longest an HTTP ingest call waits for Kafka to acknowledge
      its events before it answers 503 with `Retry-After` (default 10).
    - `VITALS_BATCH_MAX_MESSAGES`, `VITALS_BATCH_MAX_SECONDS`: sink flush thresholds (200
      messages, 1 s: each flush costs the engine a new part per table and view; a busy topic
      is written every quarter of the wait, `pipeline.ingest.worker.BUSY_BATCH_BYTES`).
    - `VITALS_STREAM_BUFFER`: messages faust buffers per topic ahead of the agent (default
      2000, at least 2 × the batch; see docs/operations.md "Backpressure").
    - `VITALS_MAX_MESSAGE_BYTES`: larger Kafka messages go to the DLQ (default 4 MiB, at most
      `TOPIC_MAX_MESSAGE_BYTES`).
    - `VITALS_SECRET`: HMAC key for scroll ids; default: generated once into the data dir.
    - `VITALS_STATSD_PORT`: UDP port of the DogStatsD listener that `vitals up` and
      `vitals statsd` run (default 8125; `off` disables it in `vitals up`; 0 picks a free port).
      Unset in a `Settings()` built in code: no listener.
    - `VITALS_STATSD_HOST`: address it binds (default 127.0.0.1; 0.0.0.0 for all interfaces).
    - `VITALS_STATSD_TENANT`: the tenant every datagram on that listener belongs to (UDP carries
      no credentials; run one listener per tenant when several share a host; default `default`).
    - `VITALS_STATSD_FLUSH_S`: how often aggregated series-seconds go to Kafka (default 0.5).
    - `VITALS_STATSD_MAX_BUFFER`: series-seconds held between flushes; samples of new ones
      beyond it are dropped and counted (default 200000).
    - `VITALS_STATSD_MAX_DATAGRAM`: larger datagrams are dropped whole and counted
      (default 8192 bytes, the DogStatsD agent's buffer size).
    - `VITALS_METRICS_MAX_SERIES`: distinct custom-metric series (name + tags + kind) per
      tenant; events of further series are dead-lettered and counted (default 10000).
    - `VITALS_MAX_BODY_BYTES`: largest HTTP request body the API reads (default 16 MiB; a
      larger or longer body gets 413 before it is buffered). Routes have smaller limits.
    - `VITALS_SESSION_TIMEOUT_S`: Kafka consumer-group session timeout (default 45): how long
      a worker that died without leaving (kill -9, lost host) keeps its partitions before the
      group rebalances them to the others. The broker bounds it (6-1800 s by default).
    - `VITALS_DLQ_ALERT_RATIO`, `VITALS_DLQ_ALERT_WINDOW_S`, `VITALS_DLQ_ALERT_MIN_EVENTS`: a
      topic whose share of dead-lettered events over the trailing window (default 60 s) exceeds
      the ratio (default 0.05), once at least the minimum events (default 20) were seen, raises
      the `vitals_dlq_alert` gauge and logs a WARNING (see `pipeline.ingest.dlq_alert`).
    - `VITALS_FAULT`: test-only fault injection, `<point>:<n>` (see `pipeline.core.faults`); the
      worker kills itself with SIGKILL the n-th time it reaches the point. Never set it in
      production.
    - `VITALS_METRICS_CACHE_S`: endpoint-metrics response cache lifetime (whole seconds) at 1m,
      scaled by granularity/1m and capped at 300 s (default 5; 0 disables the cache).
    - `VITALS_METRICS_SERIES_CACHE`: rollup buckets (1m or 1h points) the endpoint-metrics
      series keep per API process between calls, re-reading only the buckets that changed
      (query_api/endpoint_metrics/series_cache.py; ~2.5 KB each; default 50,000; 0 reads every
      bucket on
      every call).
    - `VITALS_METRICS_RATE_LIMIT`, `VITALS_METRICS_RATE_WINDOW_S`: endpoint-metrics calls allowed
      per API key per sliding window, per API process (default 60 per 3600 s).
    - `VITALS_METRICS_MAX_RANGE`: longest timeframe per granularity, `1m=6h,5m=24h,15m=7d,1h=30d`
      by default (1d is unlimited); e.g. `1m=24h` lifts the 1m limit to 24 h.
    - `VITALS_COMPACT_INTERVAL_S`: how often a worker compacts closed 1m/1h rollup buckets
      (pipeline/ingest/compaction.py; default 30, 0 disables).
    """

    kafka_bootstrap: str | None = None
    kafka_port: int = 9092
    clickhouse_dsn: str | None = None
    clickhouse_database: str = "vitals"
    data_dir: Path = Path(".data")
    topics: TopicNames = field(default_factory=TopicNames)
    topic_partitions: int = 1
    consumer_group: str = "vitals-worker"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    probe_port: int | None = None
    stats_window_s: int = 60
    liveness_timeout_s: int = 60
    max_future_s: int = 300
    retention: Retention = field(default_factory=Retention)
    ingest_timeout_s: float = 10.0
    batch_max_messages: int = 200
    batch_max_seconds: float = 1.0
    stream_buffer: int = 2000
    max_message_bytes: int = 4 * 1024 * 1024
    secret: str | None = None
    statsd_port: int | None = None
    statsd_host: str = "127.0.0.1"
    statsd_tenant: str = "default"
    statsd_flush_s: float = 0.5
    statsd_max_buffer: int = 200_000
    statsd_max_datagram: int = 8192
    metrics_max_series: int = 10_000
    max_body_bytes: int = 16 * 1024 * 1024
    session_timeout_s: float = 45.0
    dlq_alert_ratio: float = 0.05
    dlq_alert_window_s: int = 60
    dlq_alert_min_events: int = 20
    fault: FaultSpec | None = None
    metrics_cache_s: float = 5.0
    metrics_series_cache_buckets: int = 50_000
    metrics_rate_limit: int = 60
    metrics_rate_window_s: int = 3600
    metrics_max_range: tuple[tuple[str, int], ...] = (
        ("1m", 6 * 3600), ("5m", 24 * 3600), ("15m", 7 * 86400), ("1h", 30 * 86400))
    compact_interval_s: int = 30
    read_cache_ms: int = 1000
    api_max_inflight: int = 64

    @property
    def dsn(self) -> str:
        """The ClickHouse DSN in force: explicit, or the embedded engine in the data dir."""
        if self.clickhouse_dsn:
            return self.clickhouse_dsn
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb://")

    def max_age_ms(self, kind: str) -> int:
        """Oldest event (ms before the worker's clock) the worker stores for topic kind `kind`:
        its family's retention plus the consumer grace (`pipeline.storage.retention`). A family kept
        until deleted answers `NO_AGE_LIMIT_MS`, older than any event time."""
        age = self.retention.max_age_ms(kind)
        return NO_AGE_LIMIT_MS if age is None else age

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()

        def given(name: str, convert: Callable[[str], Any], what: str) -> Any:
            raw = env.get(name)
            if raw is None or raw == "":
                return None
            try:
                return convert(raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r} is not {what}") from None

        def num(name: str, default: int, lo: int = 0) -> int:
            value: int | None = given(name, int, "an integer")
            if value is None:
                return default
            if value < lo:
                raise SettingsError(f"{name}={value} must be >= {lo}")
            return value

        def flt(name: str, default: float) -> float:
            value: float | None = given(name, float, "a number")
            if value is None:
                return default
            if value <= 0:
                raise SettingsError(f"{name}={value} must be > 0")
            return value

        dsn = env.get("CLICKHOUSE_DSN") or None
        if dsn and not dsn.startswith(("chdb://", "http://", "https://")):
            raise SettingsError(
                f"CLICKHOUSE_DSN={dsn!r}: allowed schemes are chdb://, http://, https://"
            )
        def port_or_off(name: str, unset: int | None) -> int | None:
            """A port, or None for `off`; `unset` is the value of an unset variable."""
            raw = (env.get(name) or "").strip().lower()
            if raw == "off" or (not raw and unset is None):
                return None
            port = num(name, unset or 0)
            if port > 65535:
                raise SettingsError(f"{name}={port} must be <= 65535 or off")
            return port

        statsd_port = port_or_off("VITALS_STATSD_PORT", 8125)
        probe_port = port_or_off("VITALS_PROBE_PORT", None)
        kafka_port = num("VITALS_KAFKA_PORT", d.kafka_port)
        max_message_bytes = num("VITALS_MAX_MESSAGE_BYTES", d.max_message_bytes, 1024)
        if max_message_bytes > TOPIC_MAX_MESSAGE_BYTES:
            raise SettingsError(
                f"VITALS_MAX_MESSAGE_BYTES={max_message_bytes} must be <= "
                f"{TOPIC_MAX_MESSAGE_BYTES} (16 MiB, the largest message Vitals' topics and "
                f"local broker accept)")
        if kafka_port > 65535:
            raise SettingsError(f"VITALS_KAFKA_PORT={kafka_port} must be <= 65535")
        ratio = flt("VITALS_DLQ_ALERT_RATIO", d.dlq_alert_ratio)
        if ratio > 1:
            raise SettingsError(f"VITALS_DLQ_ALERT_RATIO={ratio} must be <= 1")
        try:
            retention = _retention.from_env(env)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        fault = None
        if env.get("VITALS_FAULT"):
            try:
                fault = parse_fault(env["VITALS_FAULT"])
            except ValueError as exc:
                raise SettingsError(f"VITALS_FAULT={env['VITALS_FAULT']!r}: {exc}") from None
        return cls(
            kafka_bootstrap=env.get("KAFKA_BOOTSTRAP") or None,
            kafka_port=kafka_port,
            clickhouse_dsn=dsn,
            clickhouse_database=env.get("CLICKHOUSE_DATABASE") or d.clickhouse_database,
            data_dir=Path(env.get("VITALS_DATA_DIR") or d.data_dir),
            topics=TopicNames(prefix=env.get("VITALS_TOPIC_PREFIX", "")),
            topic_partitions=num("VITALS_TOPIC_PARTITIONS", d.topic_partitions, 1),
            consumer_group=env.get("VITALS_CONSUMER_GROUP") or d.consumer_group,
            api_host=env.get("VITALS_API_HOST") or d.api_host,
            api_port=num("VITALS_API_PORT", d.api_port),
            probe_port=probe_port,
            stats_window_s=num("VITALS_STATS_WINDOW_S", d.stats_window_s, 1),
            liveness_timeout_s=num("VITALS_LIVENESS_TIMEOUT_S", d.liveness_timeout_s, 1),
            max_future_s=num("VITALS_MAX_FUTURE_S", d.max_future_s),
            retention=retention,
            ingest_timeout_s=flt("VITALS_INGEST_TIMEOUT_S", d.ingest_timeout_s),
            batch_max_messages=num("VITALS_BATCH_MAX_MESSAGES", d.batch_max_messages, 1),
            batch_max_seconds=flt("VITALS_BATCH_MAX_SECONDS", d.batch_max_seconds),
            stream_buffer=num("VITALS_STREAM_BUFFER", d.stream_buffer, 1),
            max_message_bytes=max_message_bytes,
            secret=env.get("VITALS_SECRET") or None,
            statsd_port=statsd_port,
            statsd_host=env.get("VITALS_STATSD_HOST") or d.statsd_host,
            statsd_tenant=env.get("VITALS_STATSD_TENANT") or d.statsd_tenant,
            statsd_flush_s=flt("VITALS_STATSD_FLUSH_S", d.statsd_flush_s),
            statsd_max_buffer=num("VITALS_STATSD_MAX_BUFFER", d.statsd_max_buffer, 1),
            statsd_max_datagram=num("VITALS_STATSD_MAX_DATAGRAM", d.statsd_max_datagram, 64),
            metrics_max_series=num("VITALS_METRICS_MAX_SERIES", d.metrics_max_series, 1),
            max_body_bytes=num("VITALS_MAX_BODY_BYTES", d.max_body_bytes, 1024),
            session_timeout_s=flt("VITALS_SESSION_TIMEOUT_S", d.session_timeout_s),
            dlq_alert_ratio=ratio,
            dlq_alert_window_s=num("VITALS_DLQ_ALERT_WINDOW_S", d.dlq_alert_window_s, 1),
            dlq_alert_min_events=num("VITALS_DLQ_ALERT_MIN_EVENTS", d.dlq_alert_min_events, 1),
            fault=fault,
            metrics_cache_s=num("VITALS_METRICS_CACHE_S", int(d.metrics_cache_s)),
            metrics_series_cache_buckets=num("VITALS_METRICS_SERIES_CACHE",
                                             d.metrics_series_cache_buckets),
            metrics_rate_limit=num("VITALS_METRICS_RATE_LIMIT", d.metrics_rate_limit, 1),
            metrics_rate_window_s=num("VITALS_METRICS_RATE_WINDOW_S",
                                      d.metrics_rate_window_s, 1),
            metrics_max_range=_max_range(env.get("VITALS_METRICS_MAX_RANGE"),
                                         d.metrics_max_range),
            compact_interval_s=num("VITALS_COMPACT_INTERVAL_S", d.compact_interval_s),
            read_cache_ms=num("VITALS_READ_CACHE_MS", d.read_cache_ms),
            api_max_inflight=num("VITALS_API_MAX_INFLIGHT", d.api_max_inflight, 1),
        )


_SPAN_S = {"m": 60, "h": 3600, "d": 86400}


def _max_range(raw: str | None, default: tuple[tuple[str, int], ...]
               ) -> tuple[tuple[str, int], ...]:
    """Parse `1m=6h,5m=24h`: overrides merged over the defaults."""
    if not raw:
        return default
    limits = dict(default)
    for item in raw.split(","):
        gran, _, span = item.strip().partition("=")
        if gran not in limits or len(span) < 2 or span[-1] not in _SPAN_S \
                or not (span[:-1].isascii() and span[:-1].isdigit()):
            raise SettingsError(f"VITALS_METRICS_MAX_RANGE={raw!r}: use e.g. '1m=6h,5m=24h' "
                                f"with granularities {', '.join(limits)}")
        limits[gran] = int(span[:-1]) * _SPAN_S[span[-1]]
    return tuple(limits.items())
