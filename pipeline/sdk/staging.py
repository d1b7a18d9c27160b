"""Events from other threads (`SyncProducer`): checked and encoded in the caller's thread,
staged under a lock, and taken into the envelope buffer on the producer's loop, a key at a
time, in order, before anything else the loop does with the buffer. Staging counts against the
buffer limits at once, so held plus staged events never exceed them.

The state is `Producer`'s (pipeline/sdk/producer.py), set in its `__init__`.
"""

from __future__ import annotations

import asyncio
import threading

from pipeline.sdk.delivery import Delivery

__all__ = ["Staged", "Staging"]

#: Staged events (`Producer.stage`) wake the loop when this many wait; fewer wait for the emit
#: loop's next turn (at most `linger_s`).
STAGE_WAKE_EVENTS = 256


class Staged:
    """Events other threads prepared, for the producer's loop to take (`Producer.stage`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # (topic, key) -> (when its first event was staged, the events' JSON bytes)
        self.groups: dict[tuple[str, bytes], tuple[float, list[bytes]]] = {}
        self.events = 0
        self.nbytes = 0


class Staging(Delivery):
    """`stage` (any thread) and `take_staged` (the loop's thread); see the module docstring."""

    buffer_max_events: int
    buffer_max_bytes: int
    _staged: Staged
    _closing: bool
    _known_topics: set[str]
    _loop: asyncio.AbstractEventLoop
    _emitter: asyncio.Task[None] | None

    @property
    def closing(self) -> bool:
        """close() has begun (or the producer never started)."""
        return self._emitter is None or self._closing

    def stage(self, topic: str, key: bytes, data: bytes, now: float) -> bool:
        """From another thread (`SyncProducer`): hold a prepared event for this loop to take,
        if the topic is known and the held plus staged events fit the buffer limits; False:
        the caller goes through `send_prepared` on the loop. Staged events are taken in order,
        before anything `send_prepared`, `flush` or `close` does."""
        st = self._staged
        with st.lock:
            if (self._closing or topic not in self._known_topics
                    or self._held_events + st.events + 1 > self.buffer_max_events
                    or self._held_bytes + st.nbytes + len(data) > self.buffer_max_bytes):
                return False
            wake = st.events == STAGE_WAKE_EVENTS  # else the emit loop takes them (linger_s)
            group = st.groups.get((topic, key))
            if group is None:
                st.groups[(topic, key)] = (now, [data])
            else:
                group[1].append(data)
            st.events += 1
            st.nbytes += len(data)
        if wake:
            self._loop.call_soon_threadsafe(self.take_staged)
        return True

    def take_staged(self) -> None:
        """Move the events other threads staged into the buffer (on the loop's thread)."""
        st = self._staged
        if not st.events:
            return
        with st.lock:
            groups, st.groups = st.groups, {}
            self._held_events += st.events
            self._held_bytes += st.nbytes
            st.events = st.nbytes = 0
        for (topic, key), (born, items) in groups.items():
            # born: when the first of them was staged (their deadline is never later)
            opened, closed = self._buffer.extend(topic, key, items, born)
            for env in opened:
                self._unreported[env] = self._loop.create_future()
            if closed:
                self._ready.extend(closed)
                self._wake.set()
