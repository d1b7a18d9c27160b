"""The worker's acceptance rules, applied where events enter (HTTP ingest, `vitals publish`).

An event a door accepts is one the worker stores, and an event the worker would dead-letter is
refused at the door with the worker's own reason: `Admission` runs `decode_envelope` (schema by
type, refinement, future-time limit) with the retention of the kind's data family
(`pipeline.storage.retention`) and the Kafka message size limit. The door measures an event's age
when
it arrives; the worker allows a consumer grace on top (`retention.CONSUMER_GRACE_MS`).

Not applied at the door: the custom-metrics series limit (`VITALS_METRICS_MAX_SERIES`), which
depends on the series the worker has stored when it reads the event. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.core.errors import InvalidEvent
from pipeline.core.settings import Settings
from pipeline.ingest.decode import decode_envelope

__all__ = ["Admission", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    """What a door decided about a list of events: the indices it accepts, and a reason for
    each index it refuses."""

    accepted: list[int]
    refused: dict[int, str]


@dataclass(frozen=True)
class Admission:
    """The rules for topic kind `kind` at instant `now_ms` (epoch ms)."""

    kind: str
    now_ms: int
    max_future_ms: int
    max_age_ms: int | None
    #: Largest event: a Kafka message of one event (`[event]`) must fit the worker's limit.
    max_event_bytes: int

    @classmethod
    def of(cls, settings: Settings, kind: str, now_s: float) -> Admission:
        return cls(kind, int(now_s * 1000), settings.max_future_s * 1000,
                   settings.retention.door_max_age_ms(kind), settings.max_message_bytes - 2)

    def judge(self, events: Sequence[Any]) -> Verdict:
        """Judge every event of `events` (JSON values, as parsed) as the worker would."""
        refused: dict[int, str] = {}
        parts: list[bytes] = []
        positions: list[int] = []
        for i, event in enumerate(events):
            try:
                data = orjson.dumps(event)
            except TypeError as exc:
                refused[i] = f"event: not JSON-encodable ({exc})"
                continue
            if len(data) > self.max_event_bytes:
                refused[i] = (f"event of {len(data)} bytes exceeds the "
                              f"{self.max_event_bytes}-byte limit")
                continue
            parts.append(data)
            positions.append(i)
        if not parts:
            return Verdict([], refused)
        value = b"[" + b",".join(parts) + b"]"
        decoded = decode_envelope(value, self.kind, now_ms=self.now_ms,
                                  max_future_ms=self.max_future_ms, max_bytes=len(value),
                                  max_age_ms=self.max_age_ms)
        for reject in decoded.rejects:
            # (an envelope of JSON values that fits is never rejected whole; if it were, every
            # event of it would be refused with the reason)
            for j in range(len(positions)) if reject.index is None else (reject.index,):
                refused[positions[j]] = reject.reason
        accepted = [positions[j] for j, _ in decoded.events]
        return Verdict(accepted, refused)

    def check(self, event: Any) -> None:
        """Raise InvalidEvent with the worker's reason if the pipeline would refuse `event`."""
        verdict = self.judge([event])
        if verdict.refused:
            raise InvalidEvent(verdict.refused[0])
