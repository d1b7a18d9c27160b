"""Decode and validate Kafka message values (envelopes) into normalised events. Pure: no I/O.

Contract of `decode_envelope`:
- a value larger than the size limit, not JSON, or neither an object nor a non-empty array of
  objects is rejected whole (`Reject.index` None);
- otherwise each event is validated against the schema of its `type` (allowed per topic kind);
  a bad event is rejected alone with its index and the rest of the envelope is kept;
- the kind's event-time field (`ts`; see `pipeline.ingest.topics.TopicKind`) is normalised to
  integer
  epoch milliseconds (values above 1e11 are read as ms, else
  seconds); events more than `max_future_ms` ahead of `now_ms` are rejected, and so are events
  older than `max_age_ms` (the retention: ClickHouse's TTL would drop them silently).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import msgspec
import orjson

import schemas
from pipeline.ingest.topics import KINDS
from schemas import SchemaViolation, Validator
from schemas.fast import FastDecoder, envelope_decoder

__all__ = ["EVENT_TYPES", "Decoded", "EventChecker", "Reject", "accepts_all", "check_encoded",
           "decode_envelope", "decode_structs", "normalise_ts_ms"]

#: Event types accepted on each topic kind, with the schema file that validates them.
EVENT_TYPES: dict[str, dict[str, str]] = {name: k.event_types for name, k in KINDS.items()}

_MS_THRESHOLD = 100_000_000_000  # 1e11: epoch seconds stay below this until the year 5138


@dataclass(frozen=True)
class Reject:
    index: int | None
    reason: str
    payload: bytes


@dataclass
class Decoded:
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def normalise_ts_ms(ts: float) -> int:
    return round(ts) if ts > _MS_THRESHOLD else round(ts * 1000)


@functools.cache
def _validators(kind: str) -> dict[str, Validator]:
    try:
        return {t: schemas.validator(name) for t, name in EVENT_TYPES[kind].items()}
    except KeyError:
        raise ValueError(f"unknown topic kind {kind!r}") from None


class EventChecker:
    """Validates single events of one topic kind at one instant: schema by `type`, then the
    event-time window. Returns the normalised event (a new dict) or raises SchemaViolation."""

    def __init__(self, kind: str, *, now_ms: int, max_future_ms: int,
                 max_age_ms: int | None = None) -> None:
        self.validators = _validators(kind)
        self.allowed = ", ".join(sorted(self.validators))
        topic_kind = KINDS[kind]
        self.ts_field, self.ts_default_now = topic_kind.ts_field, topic_kind.ts_default_now
        self.refine = topic_kind.refine
        self.now_ms = now_ms
        self.max_future_ms = max_future_ms
        self.max_age_ms = max_age_ms

    def __call__(self, item: Any) -> dict[str, Any]:
        if type(item) is not dict:
            raise SchemaViolation("event: expected object")
        etype = item.get("type")
        validate = self.validators.get(etype) if type(etype) is str else None
        if validate is None:
            raise SchemaViolation(
                f"type: {etype!r} is not an event type of this topic; allowed: {self.allowed}")
        event = validate(item)
        if self.refine is not None:
            event = self.refine(event)
        return self.stamp(event)

    def stamp(self, event: dict[str, Any]) -> dict[str, Any]:
        """Normalise a schema-valid event's time to epoch ms, checking the time window."""
        ts_field, now_ms = self.ts_field, self.now_ms
        raw_ts = event.get(ts_field)
        if raw_ts is None:
            if not self.ts_default_now:
                raise SchemaViolation(f"{ts_field}: required field is missing")
            raw_ts = now_ms
        ts_ms = normalise_ts_ms(raw_ts)
        if ts_ms > now_ms + self.max_future_ms:
            raise SchemaViolation(
                f"{ts_field}: {raw_ts!r} is {(ts_ms - now_ms) / 1000:.0f} s in the future "
                f"(limit {self.max_future_ms // 1000} s)")
        if self.max_age_ms is not None and ts_ms < now_ms - self.max_age_ms:
            raise SchemaViolation(
                f"{ts_field}: {raw_ts!r} is older than the retention of "
                f"{self.max_age_ms // 86_400_000} days")
        event[ts_field] = ts_ms
        return event


@functools.cache
def _fast_decoder(kind: str) -> FastDecoder | None:
    return envelope_decoder([schemas.load(name) for name in EVENT_TYPES[kind].values()])


def _decode_fast(value: bytes, kind: str, checker: EventChecker) -> list[dict[str, Any]] | None:
    """All events of the envelope through the msgspec fast path, or None if any of them (or
    the envelope) needs the Python path to say what is wrong."""
    fast = _fast_decoder(kind)
    if fast is None:
        return None
    try:
        events = fast.decode(value)
    except msgspec.MsgspecError:
        return None
    if not events:
        return None
    refine, stamp = checker.refine, checker.stamp
    try:
        if refine is not None:
            events = [refine(e) for e in events]
        for e in events:
            stamp(e)
    except SchemaViolation:
        return None
    return events


@functools.cache
def _columnar_decoder(kind: str) -> tuple[FastDecoder, attrgetter[Any]] | None:
    fast = _fast_decoder(kind)
    k = KINDS[kind]
    if fast is None or not fast.columnar or k.refine is not None or k.ts_default_now:
        return None
    return fast, attrgetter(k.ts_field)


def decode_structs(value: bytes | None, kind: str, *, now_ms: int, max_future_ms: int,
                   max_bytes: int, max_age_ms: int | None = None,
                   ) -> tuple[list[Any], list[int]] | None:
    """The columnar fast path: a message whose every event is valid, as msgspec structs
    (`schemas.fast.FastDecoder.structs`) with their event times normalised to epoch ms.

    None when the message needs `decode_envelope`: the kind has no columnar decoder (several
    event types, a `refine` step, post-decoding checks or a defaulted time), or the message is
    oversized, invalid, empty, or holds an event outside the time window. `decode_envelope`
    then accepts and normalises exactly these events, or says what is wrong."""
    if value is None or len(value) > max_bytes:
        return None
    columnar = _columnar_decoder(kind)
    if columnar is None:
        return None
    decoded = _fast_decode(columnar, value)
    if decoded is None or not decoded[0]:
        return None
    events, ts_ms = decoded
    if max(ts_ms) > now_ms + max_future_ms or (
            max_age_ms is not None and min(ts_ms) < now_ms - max_age_ms):
        return None
    return events, ts_ms


def _fast_decode(columnar: tuple[FastDecoder, attrgetter[Any]], data: bytes
                 ) -> tuple[list[Any], list[int]] | None:
    """The events of `data` as the kind's fast path decodes them and their event times (epoch
    ms), or None when it declines the bytes."""
    fast, get_ts = columnar
    try:
        events = fast.structs(data)
    except msgspec.MsgspecError:
        return None
    # `normalise_ts_ms`, inlined: one call per event is a measurable share of the worker's path
    return events, [round(t) if t > _MS_THRESHOLD else round(t * 1000) for t in map(get_ts, events)]


def check_encoded(kind: str, data: bytes, event: dict[str, Any], *, now_ms: int,
                  max_future_ms: int) -> None:
    """Raise SchemaViolation, with the worker's reason, if the worker would dead-letter `event`,
    whose JSON encoding is `data` (the bytes the producer sends).

    The worker's own fast path judges the bytes (msgspec structs compiled from the schemas,
    then the kind's `refine` step and the event-time window); only an event it declines goes
    through `EventChecker` on the bytes read back as the worker reads them, which names the
    reason or accepts what the fast path is stricter about (an integral float as an integer).
    So the producer and the worker decide alike, at the fast path's cost for a valid event."""
    columnar = _columnar_decoder(kind)
    if columnar is not None:
        fast, get_ts = columnar
        try:
            ts = get_ts(fast.struct(data))
        except msgspec.MsgspecError:
            pass
        else:
            if normalise_ts_ms(ts) <= now_ms + max_future_ms:
                return
    checker = EventChecker(kind, now_ms=now_ms, max_future_ms=max_future_ms)
    if columnar is None:
        fast_events = _decode_fast(data, kind, checker)
        if fast_events is not None and len(fast_events) == 1:
            return
    try:  # the event as the worker reads it (a number beyond int64 becomes a float)
        doc = _loads(data)
    except ValueError:
        doc = event
    checker(doc)


def accepts_all(kind: str, value: bytes, count: int, *, now_ms: int, max_future_ms: int) -> bool:
    """Whether the worker's fast path accepts every event of the envelope `value` (a JSON array
    of `count` events) within the future-time limit. False says nothing about which event it
    declines, or whether the Python path would accept them all: ask `check_encoded` per event."""
    columnar = _columnar_decoder(kind)
    if columnar is not None:
        decoded = _fast_decode(columnar, value)
        if decoded is None or len(decoded[1]) != count:
            return False
        limit = now_ms + max_future_ms
        return all(t <= limit for t in decoded[1])
    checker = EventChecker(kind, now_ms=now_ms, max_future_ms=max_future_ms)
    events = _decode_fast(value, kind, checker)
    return events is not None and len(events) == count


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _int_as_orjson(text: str) -> int | float:
    """An integer literal as orjson reads it: beyond int64/uint64, a float."""
    n = int(text)
    return n if -(2**63) <= n < 2**64 else float(n)


def _loads(value: bytes) -> Any:
    """The message as JSON. orjson refuses a number beyond a double's range (`1e400`) where the
    fast path's msgspec skips it in a field it ignores; so such a message is read again by the
    standard parser, with those numbers as ±inf: an ignored field stays ignored, a schema field
    is refused as "non-finite number", and the decision per event is the same on either path.
    Integers read as orjson reads them; NaN/Infinity literals and lone surrogates stay invalid,
    as in msgspec and orjson."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        try:
            doc = json.loads(value, parse_constant=_reject_constant, parse_int=_int_as_orjson)
            orjson.dumps(doc)  # strings orjson cannot hold (lone surrogates) are refused
        except (ValueError, TypeError, RecursionError):
            pass
        else:
            return doc
        raise


def decode_envelope(value: bytes | None, kind: str, *, now_ms: int, max_future_ms: int,
                    max_bytes: int, max_age_ms: int | None = None) -> Decoded:
    out = Decoded()
    if value is None:
        out.rejects.append(Reject(None, "empty message value", b""))
        return out
    if len(value) > max_bytes:
        out.rejects.append(Reject(
            None, f"message of {len(value)} bytes exceeds the {max_bytes}-byte limit",
            value[:1024]))
        return out
    checker = EventChecker(kind, now_ms=now_ms, max_future_ms=max_future_ms,
                           max_age_ms=max_age_ms)
    fast = _decode_fast(value, kind, checker)
    if fast is not None:
        out.events = list(enumerate(fast))
        return out
    try:
        doc = _loads(value)
    except ValueError as exc:
        out.rejects.append(Reject(None, f"invalid JSON: {exc}", value))
        return out
    if type(doc) is dict:
        items: list[Any] = [doc]
    elif type(doc) is list:
        items = doc
        if not items:
            out.rejects.append(Reject(None, "empty envelope: an array needs at least one event",
                                      value))
            return out
    else:
        out.rejects.append(Reject(
            None, "envelope must be a JSON object or an array of objects", value))
        return out
    for i, item in enumerate(items):
        try:
            event = checker(item)
        except SchemaViolation as exc:
            out.rejects.append(Reject(i, str(exc), orjson.dumps(item)))
            continue
        out.events.append((i, event))
    return out
