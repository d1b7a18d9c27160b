"""`SyncProducer`: the producer SDK for code without an event loop.

The same `Producer`, with the same arguments and the same failure contract
(pipeline/sdk/producer.py),
run on a private event loop thread; every call returns or raises within the bound of the
`Producer` call it wraps, and the context manager raises undelivered events on exit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Coroutine, Iterable
from types import TracebackType
from typing import Any, TypeVar

from pipeline.core.settings import TopicNames
from pipeline.sdk.producer import SLICE_EVENTS, Producer
from pipeline.sdk.producer_errors import DeliveryFailed, ProducerClosed

__all__ = ["SyncProducer"]

_T = TypeVar("_T")


class SyncProducer:
    """Blocking facade over `Producer` on a private event loop thread; the same contract.

    Every call returns or raises within the bound of the `Producer` call it wraps.
    """

    def __init__(self, bootstrap: str, topics: TopicNames | None = None, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="vitals-producer")
        self._thread.start()
        try:
            self._producer: Producer = self._run(self._make(bootstrap, topics, kwargs))
            self._run(self._producer.start())
        except BaseException:
            self._stop_loop()
            raise

    @staticmethod
    async def _make(bootstrap: str, topics: TopicNames | None, kwargs: dict[str, Any]) -> Producer:
        return Producer(bootstrap, topics, **kwargs)

    @property
    def producer(self) -> Producer:
        """The wrapped asyncio producer (its counters: sent_events, delivered_events, ...)."""
        return self._producer

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return self._submit(coro).result()

    def _submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        if self._loop.is_closed():
            coro.close()
            raise ProducerClosed("the producer is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    def send(self, kind: str, event: dict[str, Any]) -> None:
        """Check and encode the event in the calling thread, then hand it to the loop thread
        without waiting for it when the topic is known and the buffer has room (one wake-up of
        the loop per run of such sends); otherwise wait on the loop as `Producer.send` does."""
        p = self._producer
        if p.closing:
            raise ProducerClosed("send() after close()")
        topic, key, data = p.prepare(kind, event)
        now = time.monotonic()
        if not p.stage(topic, key, data, now):
            self._run(p.send_prepared(topic, key, data, now))

    def send_many(self, kind: str, events: Iterable[dict[str, Any]]) -> None:
        """`Producer.send_many`: each slice packed in the calling thread while the loop thread
        hands the previous one to Kafka."""
        p = self._producer
        batch = events if isinstance(events, list) else list(events)
        pending: concurrent.futures.Future[None] | None = None
        try:
            for i in range(0, len(batch), SLICE_EVENTS):
                part = batch[i:i + SLICE_EVENTS]
                packed = p.pack(kind, part)
                if pending is not None:
                    pending.result()
                    pending = None
                if packed is None:
                    for event in part:
                        self.send(kind, event)
                else:
                    pending = self._submit(p.send_packed(packed, time.monotonic()))
        finally:
            if pending is not None:
                pending.result()

    def flush(self) -> None:
        self._run(self._producer.flush())

    def close(self) -> int:
        """Flush and stop; returns how many events could not be delivered."""
        if self._loop.is_closed():
            return 0
        try:
            return self._run(self._producer.close())
        finally:
            self._stop_loop()

    @property
    def close_error(self) -> DeliveryFailed | None:
        return self._producer.close_error

    def __enter__(self) -> SyncProducer:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
        if e is None and self._producer.close_error is not None:
            raise self._producer.close_error
