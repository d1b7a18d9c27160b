"""The producer's per-event work, pure: check an event as the worker will, and encode it.

`EventEncoder.prepare(kind, event)` returns (topic, message key, JSON bytes) or raises
`InvalidEvent` (the worker would dead-letter the event; the reason is the worker's) or
`EventTooLarge`. The check runs on the very bytes that will be sent
(`pipeline.decode.check_encoded`: the worker's msgspec fast path, its Python validators for an
event the fast path declines). No I/O and no shared mutable state: callable from any thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import orjson

from pipeline.core.errors import InvalidEvent
from pipeline.core.settings import TopicNames
from pipeline.ingest.decode import accepts_all, check_encoded
from pipeline.ingest.topics import KINDS
from pipeline.sdk.producer_errors import EventTooLarge
from schemas import SchemaViolation

__all__ = ["EventEncoder", "event_key", "key_of"]

_msgspec_encode = msgspec.json.Encoder().encode


def _encode(obj: Any) -> bytes:
    """`obj` as compact JSON. orjson first (on the bench's request events 0.35-0.37 µs per event
    in envelopes of 500 against msgspec's 0.56-0.70, bench/results.md 2026-12-03); what orjson
    declines (an integer beyond 64 bits, a non-string key) msgspec may still encode. Both hold
    the GIL throughout a call: safe from any thread. The bytes are checked after encoding, so
    the encoder decides nothing about validity."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _msgspec_encode(obj)


def key_of(value: Any) -> bytes:
    """The Kafka message key for the value of an event's key field (`""` when it has none)."""
    return str(value).encode()


def event_key(kind: str, event: dict[str, Any]) -> bytes:
    """The Kafka message key of `event` on topic kind `kind` (see `TopicKind.key_field`)."""
    return key_of(event.get(KINDS[kind].key_field, ""))


class EventEncoder:
    """Checks (when `validate`) and encodes events for `topics`; `clock` is the event-time
    clock of the future-time check, `max_message_bytes` the largest envelope."""

    def __init__(self, topics: TopicNames, *, validate: bool = True, max_future_s: int = 300,
                 max_message_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self.validate = validate
        self.max_future_ms = max_future_s * 1000
        self.max_message_bytes = max_message_bytes
        self.clock = clock
        # topic kind -> (topic name, the event field whose value is the message key)
        self._routes = {kind: (topics.topic(kind), k.key_field) for kind, k in KINDS.items()}

    def prepare(self, kind: str, event: dict[str, Any]) -> tuple[str, bytes, bytes]:
        route = self._routes.get(kind)
        if route is None:
            raise InvalidEvent(f"unknown topic kind {kind!r}; allowed: {', '.join(KINDS)}")
        unencodable: Exception | None = None
        try:
            data = _encode(event)
        except (TypeError, ValueError, OverflowError, msgspec.MsgspecError) as exc:
            data, unencodable = b"", exc
        if self.validate or unencodable is not None:
            try:
                check_encoded(kind, data, event, now_ms=int(self.clock() * 1000),
                              max_future_ms=self.max_future_ms)
            except SchemaViolation as exc:
                raise InvalidEvent(str(exc)) from None
            if unencodable is not None:
                raise InvalidEvent(f"event is not JSON-encodable: {unencodable}") from None
        if len(data) + 2 > self.max_message_bytes:
            raise EventTooLarge(len(data) + 2, self.max_message_bytes)
        topic, key_field = route
        return topic, key_of(event.get(key_field, "")), data

    def pack(self, kind: str, events: Sequence[dict[str, Any]], max_events: int,
             max_bytes: int) -> list[tuple[str, bytes, bytes, int]] | None:
        """The events as whole envelopes, (topic, key, JSON array, event count), each at most
        `max_events` events and `max_bytes` bytes, in order per key; encoded and checked one
        envelope per C call. None unless the worker's fast path accepts every event: the caller
        then takes them one by one (`prepare`), which names the first bad one."""
        route = self._routes.get(kind)
        if route is None or not events:
            return None
        topic, key_field = route
        # grouped by the key field's value itself (no str() per event); two values that print
        # alike (1 and "1") would split one key's order over two groups: then no packing
        groups: dict[Any, list[dict[str, Any]]] = {}
        for e in events:
            if type(e) is not dict:
                return None
            v = e.get(key_field, "")
            group = groups.get(v)
            if group is None:
                if type(v) is not int and type(v) is not str:
                    return None
                groups[v] = [e]
            else:
                group.append(e)
        by_key = {key_of(v): group for v, group in groups.items()}
        if len(by_key) != len(groups):
            return None
        now_ms = int(self.clock() * 1000)
        out: list[tuple[str, bytes, bytes, int]] = []
        for key, group in by_key.items():
            for i in range(0, len(group), max_events):
                if not self._pack(kind, topic, key, group[i:i + max_events], max_bytes, now_ms,
                                  out):
                    return None
        return out

    def _pack(self, kind: str, topic: str, key: bytes, chunk: list[dict[str, Any]],
              max_bytes: int, now_ms: int, out: list[tuple[str, bytes, bytes, int]]) -> bool:
        try:
            value = _encode(chunk)
        except (TypeError, ValueError, OverflowError, msgspec.MsgspecError):
            return False
        if len(value) > max_bytes:  # halve until it fits; one event alone: `prepare` decides
            half = len(chunk) // 2
            return half > 0 and all(self._pack(kind, topic, key, part, max_bytes, now_ms, out)
                                    for part in (chunk[:half], chunk[half:]))
        if self.validate and not accepts_all(kind, value, len(chunk), now_ms=now_ms,
                                             max_future_ms=self.max_future_ms):
            return False
        out.append((topic, key, value, len(chunk)))
        return True
