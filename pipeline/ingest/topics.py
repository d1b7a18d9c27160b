"""The topic kinds Vitals consumes, each declared once: event types, key, timestamp, rows.

A kind plugs into every shell through this registry: the producer SDK validates and keys events
by it, `decode_envelope` validates by its schemas, the worker runs one agent per kind, and the
sink turns decoded events into ClickHouse rows with its `build` function (pure, see
`pipeline.ingest.rows.requests.SinkBatch`). Adding a kind = a schema file, a migration, a builder
and one
entry in `KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.core.settings import TOPIC_MAX_MESSAGE_BYTES
from pipeline.ingest.rows import jobs, task_events
from pipeline.ingest.rows import metrics as custom_metrics
from pipeline.ingest.rows.requests import SinkBatch

if TYPE_CHECKING:
    from pipeline.core.settings import Settings
    from pipeline.core.telemetry import Telemetry
    from pipeline.storage.clickhouse import AsyncStore

__all__ = ["KINDS", "MAX_MESSAGE_BYTES", "Builder", "Gate", "StructBuilder", "TopicKind", "kind"]

#: Largest Kafka message the local broker and Vitals' topics accept (declared with the setting
#: it bounds, `pipeline.core.settings.TOPIC_MAX_MESSAGE_BYTES`).
MAX_MESSAGE_BYTES = TOPIC_MAX_MESSAGE_BYTES

Event = tuple[int, dict[str, Any]]
#: (batch, Kafka partition, Kafka offset, [(index in envelope, decoded event)]) -> None
Builder = Callable[[SinkBatch, int, int, list[Event]], None]
#: (batch, Kafka partition, Kafka offset, decoded structs, event times in ms) -> None
StructBuilder = Callable[[SinkBatch, int, int, list[Any], list[int]], None]


class Gate(Protocol):
    """Optional stateful admission step between decoding and `build` (one per sink).

    `prepare` runs (awaited) before each batch; `admit` is pure given the gate's state and
    splits events into admitted ones and rejects `(index, reason, event)` for the DLQ."""

    async def prepare(self, store: AsyncStore) -> None: ...

    def admit(self, events: list[Event]) -> tuple[list[Event], list[tuple[int, str, Any]]]: ...


@dataclass(frozen=True)
class TopicKind:
    """One topic kind.

    - `event_types`: event `type` value → JSON Schema file name in `schemas/`;
    - `key_field`: event field whose value is the Kafka message key (keeps an entity's events
      in one partition, in order);
    - `ts_field`: the event-time field, normalised to epoch ms by decoding; when
      `ts_default_now` it may be absent and then means "now" (the decode clock);
    - `build`: appends the rows of one message's valid events to a `SinkBatch`;
    - `gate`: optional factory of a `Gate` that admits events before `build`.
    - `refine`: optional per-event check beyond the JSON Schema (raises SchemaViolation), run
      by `pipeline.ingest.decode.EventChecker` after schema validation.
    - `build_structs`: optional columnar fast path of `build` for a message whose events are
      all valid, given as msgspec structs (`pipeline.ingest.decode.decode_structs`); it must append
      exactly the rows `build` appends for the same events (tests/unit/schemas/test_fast_decode.py).
    """

    name: str
    event_types: dict[str, str]
    key_field: str
    build: Builder
    ts_field: str = "ts"
    ts_default_now: bool = False
    gate: Callable[[Settings, Telemetry], Gate] | None = None
    refine: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    build_structs: StructBuilder | None = None


#: Every kind, by name. The names are `pipeline.core.settings.TOPIC_KINDS` (what topic names
#: are derived from), each declared here once with its schemas, key and rows.
KINDS: dict[str, TopicKind] = {k.name: k for k in (
    TopicKind("requests", {"request": "request"}, "endpoint_id",
              SinkBatch.add_requests, build_structs=SinkBatch.add_request_structs),
    TopicKind("heartbeats", {"heartbeat": "heartbeat"}, "endpoint_id",
              SinkBatch.add_heartbeats),
    TopicKind("metrics", {"metric": "metric"}, "name", custom_metrics.build,
              gate=lambda s, t: custom_metrics.SeriesGate(s.metrics_max_series, t)),
    TopicKind("jobs", {"task": "job_task", "node": "job_node"}, "tenant", jobs.build),
    TopicKind("task-events", task_events.EVENT_TYPES, "task", task_events.add_task_events,
              ts_field="timestamp", ts_default_now=True, refine=task_events.refine),
)}


def kind(name: str) -> TopicKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown topic kind {name!r}; allowed: {', '.join(KINDS)}") from None
