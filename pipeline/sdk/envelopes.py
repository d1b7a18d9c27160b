"""Pure batching for the producer: events (JSON bytes) into envelopes, one open per message key.

An envelope is one Kafka message value, a JSON array of events with one key. It closes when the
next event would take it past `max_events` events or `max_bytes` bytes (an event larger than
`max_bytes` on its own gets an envelope of its own), and is due once it has been open `linger_s`.
Within one (topic, key) envelopes close in the order their events were added, and nothing here
reorders them. No I/O and no clock of its own: callers pass `now`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

__all__ = ["Envelope", "EnvelopeBuffer"]


@dataclass(eq=False)
class Envelope:
    """Events bound for one (topic, key); `born` is when its first event was accepted.

    A `raw` envelope holds one message value sent as is (`keyless`: sent without a key). A
    `packed` one holds `count` events already encoded as one JSON array (`Envelope.of_packed`).
    """

    topic: str
    key: bytes
    born: float
    raw: bool = False
    keyless: bool = False
    items: list[bytes] = field(default_factory=list)
    nbytes: int = 2  # "[" and "]"
    payload: int = 0  # the items' bytes alone
    count: int = 0  # events
    packed: bytes | None = None

    @classmethod
    def of_packed(cls, topic: str, key: bytes, born: float, value: bytes,
                  count: int) -> Envelope:
        return cls(topic, key, born, nbytes=len(value), payload=len(value), count=count,
                   packed=value)

    def add(self, data: bytes) -> None:
        self.nbytes += len(data) + (1 if self.items else 0)
        self.payload += len(data)
        self.count += 1
        self.items.append(data)

    def event_bytes(self) -> list[bytes]:
        """Each event's JSON bytes (split from the array of a packed envelope on demand)."""
        if self.packed is None:
            return self.items
        return [bytes(r) for r in msgspec.json.decode(self.packed, type=list[msgspec.Raw])]

    def size_with(self, data: bytes) -> int:
        """Bytes of the message value if `data` were added."""
        return self.nbytes + len(data) + (1 if self.items else 0)

    def value(self) -> bytes:
        if self.packed is not None:
            return self.packed
        if self.raw:
            return self.items[0]
        return b"[" + b",".join(self.items) + b"]"


class EnvelopeBuffer:
    """The open envelopes, one per (topic, key)."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        if max_events < 1 or max_bytes < 3:
            raise ValueError("max_events must be >= 1 and max_bytes >= 3")
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._open: dict[tuple[str, bytes], Envelope] = {}

    def add(self, topic: str, key: bytes, data: bytes,
            now: float) -> tuple[Envelope, Envelope | None]:
        """Add one event; returns (the envelope now holding it, the envelope this add closed)."""
        env = self._open.get((topic, key))
        closed = None
        if env is not None and (len(env.items) >= self.max_events
                                or env.size_with(data) > self.max_bytes):
            closed, env = env, None
        if env is None:
            env = self._open[(topic, key)] = Envelope(topic, key, now)
        env.add(data)
        return env, closed

    def extend(self, topic: str, key: bytes, items: list[bytes],
               now: float) -> tuple[list[Envelope], list[Envelope]]:
        """`add` for each of `items` in order; returns (the envelopes opened, those closed)."""
        opened: list[Envelope] = []
        closed: list[Envelope] = []
        env = self._open.get((topic, key))
        max_events, max_bytes = self.max_events, self.max_bytes
        for data in items:
            if env is None or len(env.items) >= max_events or env.size_with(data) > max_bytes:
                if env is not None:
                    closed.append(env)
                env = self._open[(topic, key)] = Envelope(topic, key, now)
                opened.append(env)
            env.add(data)
        return opened, closed

    def take_due(self, opened_before: float) -> list[Envelope]:
        """Close and return the envelopes opened before `opened_before`, oldest first."""
        due = sorted((e for e in self._open.values() if e.born < opened_before),
                     key=lambda e: e.born)
        for env in due:
            del self._open[(env.topic, env.key)]
        return due

    def take_all(self) -> list[Envelope]:
        """Close and return every open envelope, oldest first."""
        envs = sorted(self._open.values(), key=lambda e: e.born)
        self._open.clear()
        return envs

    def take(self, topic: str, key: bytes) -> Envelope | None:
        """Close and return the open envelope of (topic, key), if any."""
        return self._open.pop((topic, key), None)
