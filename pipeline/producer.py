"""Producer SDK: validate events, batch them into envelopes, publish to Kafka.

Envelopes hold up to `max_events` events or `max_bytes` bytes, all with the same message key
(endpoint id for requests and heartbeats), and leave after `linger_s` at the latest. The Kafka
producer is idempotent with `acks=all`, so its internal retries never duplicate a message.
`flush()` returns once every event sent before it is acknowledged by Kafka; `close()` flushes.

Async use::

    async with Producer("127.0.0.1:9092") as p:
        await p.send("requests", {"v": 1, "type": "request", "ts": time.time(),
                                  "endpoint_id": 7, "status": 200, "latency_ms": 41.5})

Sync use: `SyncProducer` runs the same producer on a background event loop.

Delivery reports: `on_delivery(topic, events, error)` is called once per envelope when Kafka
acknowledged it (`error` None) or it finally failed; `events` are the envelope's events as JSON
bytes. A ledger of acknowledged events (tests/integration/faults/ledger.py) is built from it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from pipeline.decode import EventChecker
from pipeline.errors import InvalidEvent
from pipeline.kafka_local import MAX_MESSAGE_BYTES
from pipeline.settings import TopicNames
from pipeline.topics import KINDS
from schemas import SchemaViolation

__all__ = ["DeliveryReport", "Producer", "SyncProducer", "event_key"]

log = logging.getLogger("vitals.producer")

#: (topic, the envelope's events as JSON bytes, None if acknowledged else the error)
DeliveryReport = Callable[[str, list[bytes], BaseException | None], None]


def event_key(kind: str, event: dict[str, Any]) -> bytes:
    """The Kafka message key of `event` on topic kind `kind` (see `TopicKind.key_field`)."""
    return str(event.get(KINDS[kind].key_field, "")).encode()


class Producer:
    def __init__(self, bootstrap: str, topics: TopicNames | None = None, *,
                 max_events: int = 500, max_bytes: int = 512 * 1024, linger_s: float = 0.05,
                 validate: bool = True, max_future_s: int = 300,
                 clock: Callable[[], float] = time.time,
                 on_delivery: DeliveryReport | None = None) -> None:
        self.on_delivery = on_delivery
        self.topics = topics or TopicNames()
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.linger_s = linger_s
        self.validate = validate
        self.max_future_ms = max_future_s * 1000
        self.clock = clock
        self._kafka = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
            linger_ms=5, max_request_size=MAX_MESSAGE_BYTES,
            max_batch_size=max(1 << 20, max_bytes * 2),
        )
        self._buffers: dict[tuple[str, bytes], tuple[list[bytes], int]] = {}
        self._pending: set[asyncio.Future[Any]] = set()
        self._lock = asyncio.Lock()
        self._linger_task: asyncio.Task[None] | None = None
        self.sent_events = 0
        self.sent_messages = 0

    async def start(self) -> None:
        await self._kafka.start()
        self._linger_task = asyncio.create_task(self._linger())

    async def __aenter__(self) -> Producer:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def check(self, kind: str, event: dict[str, Any]) -> None:
        """Raise InvalidEvent if the pipeline would dead-letter this event."""
        if kind not in KINDS:
            raise InvalidEvent(f"unknown topic kind {kind!r}; allowed: {', '.join(KINDS)}")
        checker = EventChecker(kind, now_ms=int(self.clock() * 1000),
                               max_future_ms=self.max_future_ms)
        try:
            checker(event)
        except SchemaViolation as exc:
            raise InvalidEvent(str(exc)) from None

    async def send(self, kind: str, event: dict[str, Any]) -> None:
        if self.validate:
            self.check(kind, event)
        data = orjson.dumps(event)
        topic = self.topics.topic(kind)
        key = event_key(kind, event)
        async with self._lock:
            items, size = self._buffers.get((topic, key), ([], 0))
            if items and (len(items) >= self.max_events or size + len(data) + 1 > self.max_bytes):
                await self._emit(topic, key, items)
                items, size = [], 0
            items.append(data)
            self._buffers[(topic, key)] = (items, size + len(data) + 1)

    async def send_many(self, kind: str, events: Iterable[dict[str, Any]]) -> None:
        for e in events:
            await self.send(kind, e)

    async def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Publish one message value as is (no validation); for tools and tests."""
        fut = await self._kafka.send(topic, value, key=key)
        self._track(fut)

    async def _emit(self, topic: str, key: bytes, items: list[bytes]) -> None:
        value = b"[" + b",".join(items) + b"]"
        report = self.on_delivery
        try:
            fut = await self._kafka.send(topic, value, key=key)
        except Exception as exc:
            if report is not None:
                report(topic, items, exc)
            raise
        if report is not None:
            fut.add_done_callback(
                lambda f: report(topic, items, f.exception() if not f.cancelled()
                                 else asyncio.CancelledError()))
        self._track(fut)
        self.sent_events += len(items)
        self.sent_messages += 1

    def _track(self, fut: asyncio.Future[Any]) -> None:
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)

    async def _drain_buffers(self) -> None:
        """Emit every buffered envelope; if some fail, the others still go and the first error
        is raised at the end (each failure is also reported to `on_delivery`)."""
        first: Exception | None = None
        async with self._lock:
            buffers, self._buffers = self._buffers, {}
            for (topic, key), (items, _) in buffers.items():
                if items:
                    try:
                        await self._emit(topic, key, items)
                    except Exception as exc:
                        first = first or exc
        if first is not None:
            raise first

    async def _linger(self) -> None:
        while True:
            await asyncio.sleep(self.linger_s)
            try:
                await self._drain_buffers()
            except Exception as exc:  # reported per envelope; keep lingering
                log.warning("publishing to Kafka failed: %r", exc)

    async def flush(self) -> None:
        await self._drain_buffers()
        pending = list(self._pending)
        if pending:
            await asyncio.gather(*pending)

    async def close(self) -> None:
        try:
            await self.flush()
        finally:
            if self._linger_task is not None:
                self._linger_task.cancel()
                self._linger_task = None
            await self._kafka.stop()


class SyncProducer:
    """Blocking facade over `Producer`, running it on a private event loop thread."""

    def __init__(self, bootstrap: str, topics: TopicNames | None = None, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="vitals-producer")
        self._thread.start()
        self._producer: Producer = self._run(self._make(bootstrap, topics, kwargs))
        self._run(self._producer.start())

    @staticmethod
    async def _make(bootstrap: str, topics: TopicNames | None, kwargs: dict[str, Any]) -> Producer:
        return Producer(bootstrap, topics, **kwargs)

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def send(self, kind: str, event: dict[str, Any]) -> None:
        self._run(self._producer.send(kind, event))

    def flush(self) -> None:
        self._run(self._producer.flush())

    def close(self) -> None:
        try:
            self._run(self._producer.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def __enter__(self) -> SyncProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
