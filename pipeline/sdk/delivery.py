"""The delivery half of `Producer` (pipeline/sdk/producer.py): closed and lingering envelopes
handed to Kafka in order, and each envelope's fate decided exactly once (`_report`): by Kafka's
answer, or undelivered at its deadline (`delivery_timeout_s` after its first event was
accepted), whichever comes first. The fate reaches `on_delivery`, the futures `flush()` waits
on, and the counters; the held events and bytes it frees make room for `send()`.

The state is `Producer`'s (it sets every attribute declared here in its `__init__`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from pipeline.sdk.envelopes import Envelope, EnvelopeBuffer
from pipeline.sdk.producer_errors import DeliveryFailed, DeliveryTimeout, FailureTally
from pipeline.sdk.producer_kafka import KafkaLink

__all__ = ["Delivery", "DeliveryReport"]

log = logging.getLogger("vitals.producer")

#: (topic, the envelope's events as JSON bytes, None if acknowledged else the error)
DeliveryReport = Callable[[str, list[bytes], BaseException | None], None]


class Delivery:
    """Envelopes to Kafka, and their fates; see the module docstring."""

    on_delivery: DeliveryReport | None
    delivery_timeout_s: float
    linger_s: float
    _kafka: KafkaLink
    _buffer: EnvelopeBuffer
    _ready: collections.deque[Envelope]
    # envelope -> its fate (None: acknowledged), set once by `_report`
    _unreported: dict[Envelope, asyncio.Future[DeliveryFailed | None]]
    _in_kafka: set[asyncio.Future[Any]]
    _wake: asyncio.Event
    _space: asyncio.Event
    _held_events: int
    _held_bytes: int
    # failures of envelopes no flush() was waiting for, not raised yet (O(1) memory)
    _unsurfaced: FailureTally
    # envelope -> how many flush() calls are waiting for it
    _watched: collections.Counter[Envelope]
    sent_events: int
    sent_messages: int
    delivered_events: int
    undelivered_events: int

    def take_staged(self) -> None:
        """Move events other threads staged into the buffer (`Producer`)."""
        raise NotImplementedError

    def _unwatch(self, envs: Iterable[Envelope]) -> None:
        for env in envs:
            n = self._watched[env] - 1
            if n > 0:
                self._watched[env] = n
            else:
                del self._watched[env]

    async def _emit_loop(self) -> None:
        """Hands closed and lingering envelopes to Kafka, in order, one at a time."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.linger_s):
                    await self._wake.wait()
            self._wake.clear()
            self.take_staged()
            self._ready.extend(self._buffer.take_due(time.monotonic() - self.linger_s))
            while self._ready:
                env = self._ready.popleft()
                try:
                    await self._emit(env)
                except Exception as exc:  # a bug: said (once), reported, and the loop goes on
                    log.exception("producer emit loop: unexpected %r", exc)
                    self._report(env, self._failed(env, exc))

    async def _emit(self, env: Envelope) -> None:
        remaining = env.born + self.delivery_timeout_s - time.monotonic()
        if remaining <= 0:
            self._report(env, self._timed_out(env))
            return
        try:
            async with asyncio.timeout(remaining):
                fut = await self._kafka.send(env.topic, env.value(),
                                             None if env.keyless else env.key)
        except Exception as exc:  # translated by type; an unknown one is reported, not lost
            self._report(env, self._failed(env, exc))
            return
        self.sent_events += env.count
        self.sent_messages += 1
        self._in_kafka.add(fut)
        expiry = asyncio.get_running_loop().call_later(
            remaining, lambda: self._report(env, self._timed_out(env)))

        def answered(f: asyncio.Future[Any]) -> None:
            self._in_kafka.discard(f)
            expiry.cancel()
            exc = TimeoutError() if f.cancelled() else f.exception()
            self._report(env, None if exc is None else self._failed(env, exc))

        fut.add_done_callback(answered)

    def _timed_out(self, env: Envelope) -> DeliveryFailed:
        return self._kafka.timed_out(env.topic, env.count, self.delivery_timeout_s)

    def _failed(self, env: Envelope, exc: BaseException) -> DeliveryFailed:
        return self._kafka.failure(exc, env.topic, env.count, len(env.value()),
                                   self.delivery_timeout_s)

    def _report(self, env: Envelope, error: DeliveryFailed | None) -> None:
        """The one place an envelope's fate is decided: exactly once, then never again."""
        done = self._unreported.pop(env, None)
        if done is None:
            return
        self._held_events -= env.count
        self._held_bytes -= env.payload
        self._space.set()
        if error is None:
            self.delivered_events += env.count
        else:
            self.undelivered_events += env.count
            if env not in self._watched:
                self._unsurfaced.add(error)
            if isinstance(error, DeliveryTimeout):
                log.warning("delivery timed out: %s", error)
            else:
                log.warning("delivery failed: %s", error)
        done.set_result(error)
        if self.on_delivery is not None:
            try:
                self.on_delivery(env.topic, env.event_bytes(), error)
            except Exception as exc:
                log.error("on_delivery callback raised %r (ignored)", exc)
