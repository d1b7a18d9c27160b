"""Task events (ClearML style): per-type refinement and the ClickHouse rows of decoded events.
Pure: no I/O.

Identity (see schemas/clickhouse/002_task_events.sql):
- scalar, vector, debug image and plot events are identified by
  (tenant, task, type, iter, metric, variant, key — or url when key is empty); `metric_event_id`
  hashes the part after the task. A resend of the same identity replaces the stored row: rows carry
  `version = (offset << 20) | index`, so the later Kafka message wins.
- log events are identified by their `id` when the producer gave one (an idempotency key: HTTP
  ingest derives one from the request, see `request_log_id`, so a retried request does not
  duplicate), else by their Kafka source position (`log_event_id`), so they are never merged
  with each other; a redelivered message produces the very same rows.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from typing import Any

import orjson

from pipeline.ingest.rows.requests import SinkBatch
from schemas import SchemaViolation
from schemas.validator import kind_of

__all__ = [
    "EVENT_TYPES",
    "LOG_COLUMNS",
    "LOG_LEVELS",
    "METRIC_COLUMNS",
    "METRIC_TYPES",
    "OWNER_COLUMNS",
    "OWNER_KIND",
    "add_task_events",
    "log_event_id",
    "metric_event_id",
    "refine",
    "request_log_id",
]

#: event `type` → schema file in `schemas/`
EVENT_TYPES = {
    "training_stats_scalar": "task_event_scalar",
    "training_stats_vector": "task_event_vector",
    "training_debug_image": "task_event_image",
    "plot": "task_event_plot",
    "log": "task_event_log",
}
METRIC_TYPES = ("training_stats_scalar", "training_stats_vector", "training_debug_image", "plot")
LOG_LEVELS = ("notset", "debug", "verbose", "info", "warn", "warning", "error", "fatal",
              "critical")
MAX_VECTOR_LEN = 1_000_000
BIG_LOG_CHARS = 4096

METRIC_COLUMNS = (
    "tenant", "task", "event_type", "metric", "variant", "iter", "event_id", "timestamp",
    "value", "values", "key", "url", "plot_str", "worker", "version",
    "src_partition", "src_offset", "src_index",
)
LOG_COLUMNS = ("tenant", "task", "timestamp", "event_id", "level", "worker", "msg",
               "src_partition", "src_offset", "src_index")
OWNER_COLUMNS = ("task", "tenant", "kind", "last_seen")
#: task_owners.kind per event type: 'blobs' marks tasks holding events that can weigh MBs
#: (plots, vectors, log lines over BIG_LOG_CHARS), whose reads are sized before they are
#: fetched.
OWNER_KIND = {"training_stats_scalar": "metrics", "training_debug_image": "metrics",
              "training_stats_vector": "blobs", "plot": "blobs", "log": "logs"}


def refine(event: dict[str, Any]) -> dict[str, Any]:
    """Checks the JSON Schema subset cannot express: vector items, plot_str JSON validity.

    Raises SchemaViolation naming the field; returns the event otherwise.
    """
    etype = event["type"]
    if etype == "training_stats_vector":
        values = event["values"]
        if len(values) > MAX_VECTOR_LEN:
            raise SchemaViolation(f"values: more than {MAX_VECTOR_LEN} items")
        for i, v in enumerate(values):
            t = type(v)
            if not (t is int or (t is float and math.isfinite(v))):
                raise SchemaViolation(f"values[{i}]: expected number, got {kind_of(v)}")
    elif etype == "plot" and not event.get("skip_validation"):
        try:
            orjson.loads(event["plot_str"])
        except orjson.JSONDecodeError as exc:
            raise SchemaViolation(
                f"plot_str: not valid JSON ({exc}); set skip_validation to store it anyway"
            ) from None
    return event


def metric_event_id(etype: str, iteration: int, metric: str, variant: str, key: str) -> str:
    """md5 hex of the identity of a non-log event within its task."""
    raw = f"{etype}\x1f{iteration}\x1f{metric}\x1f{variant}\x1f{key}".encode()
    return hashlib.md5(raw, usedforsecurity=False).hexdigest()


def log_event_id(partition: int, offset: int, index: int) -> str:
    """Source-position id of a log event; string order equals source order ('l' is not hex, so
    it never equals a metric event id)."""
    return f"l{partition:05d}{offset:020d}{index:07d}"


def request_log_id(digest: str, line: int) -> str:
    """Idempotency key of the log event on line `line` of an HTTP request whose (tenant, body)
    hash to `digest`: the same request sent again yields the same keys. 'r' is not hex, so it
    never equals a metric event id; within one request, string order is line order."""
    return f"r{digest[:24]}{line:07d}"


def add_task_events(batch: SinkBatch, partition: int, offset: int,
                    events: Iterable[tuple[int, dict[str, Any]]]) -> None:
    """Append the rows of one Kafka message's valid task events to `batch`."""
    # Owners first: the sink inserts tables in registration order, so a reader that sees an
    # event also sees its task's owner row.
    owner_rows = batch.rows_for("task_owners", OWNER_COLUMNS)
    metrics = batch.rows_for("task_metric_events", METRIC_COLUMNS)
    logs = batch.rows_for("task_log_events", LOG_COLUMNS)
    owners: dict[tuple[str, str, str], int] = {}
    for index, e in events:
        tenant, task, ts, etype = e["tenant"], e["task"], e["timestamp"], e["type"]
        kind = OWNER_KIND[etype]
        if etype == "log":
            logs.append((tenant, task, ts, e.get("id") or log_event_id(partition, offset, index),
                         e["level"], e["worker"], e["msg"], partition, offset, index))
        else:
            it, metric, variant = e["iter"], e["metric"], e["variant"]
            key = e.get("key", "")
            url = e.get("url", "")
            metrics.append((
                tenant, task, etype, metric, variant, it,
                metric_event_id(etype, it, metric, variant, key or url), ts,
                float(e.get("value", 0.0)), [float(v) for v in e.get("values", ())], key, url,
                e.get("plot_str", ""), e["worker"], (offset << 20) | index,
                partition, offset, index,
            ))
        if owners.get((tenant, task, kind), -1) < ts:
            owners[(tenant, task, kind)] = ts
        if etype == "log" and len(e["msg"]) > BIG_LOG_CHARS:
            owners[(tenant, task, "blobs")] = max(ts, owners.get((tenant, task, "blobs"), -1))
        batch.events += 1
    owner_rows.extend((task, tenant, kind, ts) for (tenant, task, kind), ts in owners.items())
