"""Producer SDK: validate events, batch them into envelopes, publish them to Kafka — and say,
within a bounded time and in a type of its own, whatever stops an event from getting there.

Async use::

    async with Producer("127.0.0.1:9092") as p:
        await p.send("requests", {"v": 1, "type": "request", "ts": time.time(),
                                  "endpoint_id": 7, "status": 200, "latency_ms": 41.5})

`SyncProducer` (pipeline/sdk/sync_producer.py) is the same producer on a background event loop,
with the same contract.

Batching: envelopes (pipeline/sdk/envelopes.py) of up to `max_events` events or `max_bytes` bytes
with
one message key, sent after `linger_s` at the latest. The Kafka producer is idempotent with
`acks=all`, so its internal retries never duplicate a message.

The failure contract (README, "Ten lines"; tests/integration/sdk/test_producer_contract.py):

- `send()` raises, for that event only: `InvalidEvent` (the worker would dead-letter it),
  `EventTooLarge` (over `max_message_bytes` as JSON), `TopicNotFound` (the broker says the topic
  does not exist; answered within `metadata_timeout_s`), `BrokerUnavailable` (no broker answered
  a lookup of a topic not seen yet within `metadata_timeout_s`), `BufferFull` (the undelivered
  events fill `buffer_max_events` / `buffer_max_bytes` and none was delivered within
  `buffer_timeout_s`), `ProducerClosed`. An event `send()` accepted is delivered or reported.
- Every accepted event is acknowledged by Kafka or reported undelivered within
  `delivery_timeout_s` of its `send()`: to `on_delivery(topic, events, error)` once per envelope
  (`error` None when acknowledged, else `DeliveryTimeout` or `DeliveryFailed`), and by
  `flush()`, which raises if an event it waited for, or an earlier one no `flush()` raised yet,
  was not delivered (`undelivered` = how many). It returns within `delivery_timeout_s` + 1 s.
- `start()` raises `BrokerUnavailable` if no broker answers within `metadata_timeout_s`.
- `close()` flushes, then stops the Kafka client, within `2 × delivery_timeout_s` + 1 s in all;
  it returns how many events it could not deliver (and logs it). The context managers raise
  that as `DeliveryTimeout`/`DeliveryFailed` on exit, unless an exception is already leaving.
- Said once: the SDK's own lines and those of the Kafka client beneath it (aiokafka) pass through
  one filter (`producer_kafka.SaidOnce`): at most one line per cause per minute, process-wide.

A `DeliveryTimeout` means "not acknowledged in time", not "not written": if the broker comes back
before `close()`, Kafka may still receive those events; resend with the same event `id` to let
readers deduplicate.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from pipeline.core.settings import TopicNames
from pipeline.ingest.topics import MAX_MESSAGE_BYTES
from pipeline.sdk.delivery import DeliveryReport
from pipeline.sdk.envelopes import Envelope, EnvelopeBuffer
from pipeline.sdk.event_encoder import EventEncoder
from pipeline.sdk.producer_errors import (
    BufferFull,
    DeliveryFailed,
    EventTooLarge,
    FailureTally,
    ProducerClosed,
    TopicNotFound,
)
from pipeline.sdk.producer_kafka import SAID_ONCE, KafkaLink
from pipeline.sdk.staging import Staged, Staging

__all__ = ["ENVELOPE_BYTES", "ENVELOPE_EVENTS", "DeliveryReport", "Producer",
           "reset_log_limits"]

log = logging.getLogger("vitals.producer")


#: An envelope's default limits (`max_events`, `max_bytes`).
ENVELOPE_EVENTS, ENVELOPE_BYTES = 500, 512 * 1024

#: `send_many` packs and hands over this many events at a time.
SLICE_EVENTS = 10_000

#: How long after a `TopicNotFound` further sends to that topic fail without asking again.
_MISSING_TOPIC_MEMORY_S = 5.0


def reset_log_limits() -> None:
    """Forget which causes were logged this minute (tests measure each case from zero)."""
    SAID_ONCE.reset()


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen: it is reported through the SDK's own channels."""
    if not fut.cancelled():
        fut.exception()


class Producer(Staging):
    """Validates, batches and publishes events, with the contract of the module docstring.

    Bounds: an accepted event is acknowledged or reported undelivered within
    `delivery_timeout_s`; `start()` and the first `send()` to a topic wait at most
    `metadata_timeout_s` for the cluster; at most `buffer_max_events` events and
    `buffer_max_bytes` bytes are held undelivered, and `send()` waits at most `buffer_timeout_s`
    for room; an event or envelope is at most `max_message_bytes` as JSON (keep it at or below
    the worker's VITALS_MAX_MESSAGE_BYTES). `clock` is the event-time clock of validation only.
    """

    def __init__(self, bootstrap: str, topics: TopicNames | None = None, *,
                 max_events: int = ENVELOPE_EVENTS, max_bytes: int = ENVELOPE_BYTES,
                 linger_s: float = 0.05,
                 validate: bool = True, max_future_s: int = 300,
                 clock: Callable[[], float] = time.time,
                 on_delivery: DeliveryReport | None = None,
                 delivery_timeout_s: float = 30.0, metadata_timeout_s: float = 10.0,
                 max_message_bytes: int = 4 * 1024 * 1024,
                 buffer_max_events: int = 100_000, buffer_max_bytes: int = 64 * 1024 * 1024,
                 buffer_timeout_s: float = 5.0) -> None:
        if not 0 < max_message_bytes <= MAX_MESSAGE_BYTES:
            raise ValueError(f"max_message_bytes must be in 1..{MAX_MESSAGE_BYTES}")
        if buffer_max_bytes < max_message_bytes or buffer_max_events < 1:
            raise ValueError("buffer_max_bytes must be >= max_message_bytes, "
                             "buffer_max_events >= 1")
        if delivery_timeout_s < 1.5 or metadata_timeout_s <= 0 or buffer_timeout_s < 0:
            raise ValueError("delivery_timeout_s must be >= 1.5, metadata_timeout_s > 0, "
                             "buffer_timeout_s >= 0")
        self.bootstrap = bootstrap
        self.on_delivery = on_delivery
        self.topics = topics or TopicNames()
        self._encoder = EventEncoder(self.topics, validate=validate, max_future_s=max_future_s,
                                     max_message_bytes=max_message_bytes, clock=clock)
        self.max_events = max_events
        self.max_bytes = min(max_bytes, max_message_bytes)
        self.linger_s = linger_s
        self.delivery_timeout_s = delivery_timeout_s
        self.metadata_timeout_s = metadata_timeout_s
        self.max_message_bytes = max_message_bytes
        self.buffer_max_events = buffer_max_events
        self.buffer_max_bytes = buffer_max_bytes
        self.buffer_timeout_s = buffer_timeout_s
        # A request outlives neither a third of the delivery timeout nor 30 s, so aiokafka's own
        # waits (metadata, a full batch, a produce request) end inside our deadlines, and
        # stopping the client (3 such waits at most) inside one delivery timeout.
        self._kafka = KafkaLink(bootstrap, request_timeout_s=min(delivery_timeout_s / 3, 30.0),
                                max_bytes=self.max_bytes)
        self._buffer = EnvelopeBuffer(max_events, self.max_bytes)
        self._ready: collections.deque[Envelope] = collections.deque()
        # envelope -> its fate (None: acknowledged), set once by `_report`
        self._unreported: dict[Envelope, asyncio.Future[DeliveryFailed | None]] = {}
        self._in_kafka: set[asyncio.Future[Any]] = set()
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._held_events = 0
        self._held_bytes = 0
        self._known_topics: set[str] = set()
        self._missing_topics: dict[str, float] = {}  # topic -> until when it is taken as missing
        self._lookups: dict[str, asyncio.Task[None]] = {}
        # failures of envelopes no flush() was waiting for, not raised yet (O(1) memory)
        self._unsurfaced = FailureTally()
        # envelope -> how many flush() calls are waiting for it
        self._watched: collections.Counter[Envelope] = collections.Counter()
        self._emitter: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop  # the loop start() ran on
        self._staged = Staged()
        self._closing = False
        self.close_error: DeliveryFailed | None = None
        self.sent_events = 0          # handed to the Kafka client
        self.sent_messages = 0
        self.delivered_events = 0     # acknowledged by Kafka
        self.undelivered_events = 0   # reported undelivered (on_delivery, flush, close)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Connect; raises `BrokerUnavailable` if no broker answers within metadata_timeout_s."""
        self._loop = asyncio.get_running_loop()
        await self._kafka.start(self.metadata_timeout_s)
        self._emitter = asyncio.create_task(self._emit_loop(), name="vitals-producer-emit")

    async def __aenter__(self) -> Producer:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
        if e is None and self.close_error is not None:
            raise self.close_error

    async def flush(self) -> None:
        """Send everything buffered and wait for the fate of every event accepted so far.

        Raises `DeliveryTimeout`/`DeliveryFailed` (`undelivered` = how many) if any of those
        events was not delivered, or any earlier one that no flush() has raised yet. Concurrent
        flush() calls each raise for the events they waited for: a failure is never swallowed
        by someone else's flush(). Returns within delivery_timeout_s + 1 s.
        """
        if self._emitter is None:
            raise ProducerClosed("flush() before start() or after close()")
        self.take_staged()
        self._ready.extend(self._buffer.take_all())
        self._wake.set()
        failed, self._unsurfaced = self._unsurfaced, FailureTally()
        waiting = dict(self._unreported)
        self._watched.update(list(waiting))  # a list: counted per envelope
        try:
            if waiting:
                newest = max(env.born for env in waiting)
                bound = newest + self.delivery_timeout_s + 1.0 - time.monotonic()
                await asyncio.wait(list(waiting.values()), timeout=max(0.0, bound))
                for env, fate in waiting.items():
                    if not fate.done():  # a safety net: every path reports by its deadline
                        self._report(env, self._timed_out(env))
        except BaseException:  # cancelled: what it took on goes back, for the next flush()
            self._unwatch(waiting)
            self._unsurfaced.merge(failed.add_fates(waiting.values()))
            raise
        self._unwatch(waiting)
        summary = failed.add_fates(waiting.values()).error()
        if summary is not None:
            raise summary

    async def close(self) -> int:
        """Flush, stop the Kafka client, and return how many events were not delivered (those
        the final flush() raised for; also kept in `close_error` and logged once). Returns
        within 2 × delivery_timeout_s + 1 s; never raises a delivery failure itself."""
        with self._staged.lock:
            if self._closing:
                return 0
            self._closing = True
        error: DeliveryFailed | None = None
        try:
            if self._emitter is not None:
                await self.flush()
        except DeliveryFailed as exc:
            error = exc
        finally:
            if self._emitter is not None:
                self._emitter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._emitter
                self._emitter = None
            await self._kafka.stop(abandon=bool(self._in_kafka))
        self.close_error = error
        if error is not None:
            log.warning("close(): %s", error)
            return error.undelivered
        return 0

    # ------------------------------------------------------------------ sending

    def check(self, kind: str, event: dict[str, Any]) -> None:
        """Raise InvalidEvent if the pipeline would dead-letter this event."""
        self.prepare(kind, event)

    def prepare(self, kind: str, event: dict[str, Any]) -> tuple[str, bytes, bytes]:
        """One event checked and encoded: (topic, message key, JSON bytes), or raises
        InvalidEvent / EventTooLarge (`pipeline.sdk.event_encoder`). Touches no producer state:
        callable from any thread (`SyncProducer` runs it in the caller's)."""
        return self._encoder.prepare(kind, event)

    async def send(self, kind: str, event: dict[str, Any]) -> None:
        """Accept one event for delivery, or raise why not (see the module docstring)."""
        if self._emitter is None or self._closing:
            raise ProducerClosed("send() before start() or after close()")
        topic, key, data = self.prepare(kind, event)
        if not self.offer(topic, key, data, time.monotonic()):
            await self.send_prepared(topic, key, data, time.monotonic())
        elif self._ready:  # an envelope closed: let the loop hand it to Kafka meanwhile
            await asyncio.sleep(0)

    async def send_many(self, kind: str, events: Iterable[dict[str, Any]]) -> None:
        """`send` for each event, faster: when every event passes the worker's fast path they
        are packed into envelopes one C call each (`EventEncoder.pack`), else sent one by one
        (raising at the first bad event, the ones before it accepted). An exception while
        packed envelopes are being handed over (`BufferFull`, `ProducerClosed`) leaves the
        envelopes before it accepted: a prefix of the events per key.

        Events are taken a slice at a time (`SLICE_EVENTS`), so Kafka sends one slice while
        the next is packed."""
        batch = events if isinstance(events, list) else list(events)
        for i in range(0, len(batch), SLICE_EVENTS):
            part = batch[i:i + SLICE_EVENTS]
            packed = self.pack(kind, part)
            if packed is None:
                for e in part:
                    await self.send(kind, e)
            else:
                await self.send_packed(packed, time.monotonic())
                await asyncio.sleep(0)

    def pack(self, kind: str, events: list[dict[str, Any]],
             ) -> list[tuple[str, bytes, bytes, int]] | None:
        """Envelopes of these events, or None (see `EventEncoder.pack`); any thread."""
        return self._encoder.pack(kind, events, min(self.max_events, self.buffer_max_events),
                                  self.max_bytes)

    async def send_packed(self, packed: list[tuple[str, bytes, bytes, int]], now: float) -> None:
        """Take envelopes from `pack`, in order, waiting for metadata and room (bounded)."""
        if self._emitter is None or self._closing:
            raise ProducerClosed("send() before start() or after close()")
        self.take_staged()
        for topic, key, value, count in packed:
            await self._ensure_topic(topic)
            await self._reserve(len(value), count)
            before = self._buffer.take(topic, key)  # events sent earlier with this key go first
            if before is not None:
                self._ready.append(before)
            env = Envelope.of_packed(topic, key, now, value, count)
            self._unreported[env] = self._loop.create_future()
            self._ready.append(env)
            self._wake.set()

    def offer(self, topic: str, key: bytes, data: bytes, now: float) -> bool:
        """Take a prepared event at once if nothing needs waiting for (the topic is known, the
        buffer has room, nothing is staged by another thread); False: use `send_prepared`."""
        if (topic not in self._known_topics or self._staged.events
                or self._held_events + 1 > self.buffer_max_events
                or self._held_bytes + len(data) > self.buffer_max_bytes):
            return False
        self._held_events += 1
        self._held_bytes += len(data)
        self._add(topic, key, data, now)
        return True

    async def send_prepared(self, topic: str, key: bytes, data: bytes, now: float) -> None:
        """Take a prepared event, waiting for the topic's metadata and for room (bounded)."""
        if self._emitter is None or self._closing:
            raise ProducerClosed("send() before start() or after close()")
        self.take_staged()
        await self._ensure_topic(topic)
        await self._reserve(len(data))
        self._add(topic, key, data, now)

    def _add(self, topic: str, key: bytes, data: bytes, now: float) -> None:
        env, closed = self._buffer.add(topic, key, data, now)
        if env not in self._unreported:
            self._unreported[env] = self._loop.create_future()
        if closed is not None:
            self._ready.append(closed)
            self._wake.set()

    async def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Publish one message value as is (no validation, no batching); for tools and tests.
        Ordered after the events already sent with the same key; reported like an envelope.
        Its limit is the broker's (16 MiB), not max_message_bytes: tests send oversized values
        on purpose to see the worker dead-letter them."""
        if self._emitter is None or self._closing:
            raise ProducerClosed("send_raw() before start() or after close()")
        if len(value) > min(MAX_MESSAGE_BYTES, self.buffer_max_bytes):
            raise EventTooLarge(len(value), min(MAX_MESSAGE_BYTES, self.buffer_max_bytes))
        self.take_staged()
        await self._ensure_topic(topic)
        await self._reserve(len(value))
        k = key or b""
        before = self._buffer.take(topic, k)
        if before is not None:
            self._ready.append(before)
        env = Envelope(topic, k, time.monotonic(), raw=True, keyless=key is None)
        env.add(value)
        self._unreported[env] = self._loop.create_future()
        self._ready.append(env)
        self._wake.set()

    async def _ensure_topic(self, topic: str) -> None:
        if topic in self._known_topics:
            return
        if time.monotonic() < self._missing_topics.get(topic, 0.0):
            raise TopicNotFound(topic, self.bootstrap)
        task = self._lookups.get(topic)
        if task is None:
            task = self._lookups[topic] = asyncio.create_task(self._lookup(topic))
            task.add_done_callback(_retrieve)
            task.add_done_callback(lambda _t: self._lookups.pop(topic, None))
        await asyncio.shield(task)

    async def _lookup(self, topic: str) -> None:
        try:
            await self._kafka.lookup(topic, self.metadata_timeout_s)
        except TopicNotFound:
            self._missing_topics[topic] = time.monotonic() + _MISSING_TOPIC_MEMORY_S
            raise
        self._known_topics.add(topic)
        self._missing_topics.pop(topic, None)

    async def _reserve(self, nbytes: int, events: int = 1) -> None:
        """Count events against the buffer limits, waiting up to buffer_timeout_s for room."""
        def fits() -> bool:
            st = self._staged
            return (self._held_events + st.events + events <= self.buffer_max_events
                    and self._held_bytes + st.nbytes + nbytes <= self.buffer_max_bytes)

        if not fits():
            self._wake.set()  # send what lingers: it frees room sooner
            deadline = time.monotonic() + self.buffer_timeout_s
            while not fits():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BufferFull(self._held_events, self._held_bytes, self.buffer_timeout_s)
                self._space.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._space.wait()
        self._held_events += events
        self._held_bytes += nbytes


def __getattr__(name: str) -> Any:
    """`SyncProducer` lives in pipeline/sdk/sync_producer.py; `from pipeline.sdk.producer import
    SyncProducer` keeps working (imported on first use: that module imports this one)."""
    if name == "SyncProducer":
        from pipeline.sdk.sync_producer import SyncProducer

        return SyncProducer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
