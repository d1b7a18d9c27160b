"""The DogStatsD UDP listener: datagrams → per series-second aggregates → `metrics` topic.

Like the Datadog agent, the listener aggregates before it ships: every line is parsed
(`pipeline.statsd.parse`) and folded into one accumulator per (name, kind, tags, second); every
`statsd_flush_s` the accumulators leave as `metric` events (aggregated form, schemas/metric.json)
through the producer SDK, keyed by metric name. The worker's metrics agent merges them again
per second, so a flood of lines costs Kafka one event per series-second.

Every datagram belongs to the listener's tenant (`statsd_tenant`): UDP carries no credentials.

Failure handling (nothing here stops the listener):
- a malformed line is counted (`vitals_statsd_malformed_total`), the rest of its datagram kept,
  and a sample reason is logged at most every 10 s (`last_malformed` keeps the latest);
- a datagram above `statsd_max_datagram` bytes may be truncated: it is dropped whole and
  counted (`vitals_statsd_dropped_total{reason="oversized"}`);
- memory is bounded: at most `statsd_max_buffer` series-seconds wait for a flush; samples of
  new ones beyond it are dropped and counted (`reason="buffer_full"`);
- a flush Kafka refuses is dropped and counted (`reason="kafka"`, in samples);
- datagrams the kernel dropped because the socket buffer was full (the process could not keep
  up) are read from /proc/net/udp where available (`reason="kernel"`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from pipeline.core.log_limit import RateLimitedLog
from pipeline.core.settings import Settings
from pipeline.core.telemetry import Telemetry
from pipeline.statsd.parse import Aggregator, MalformedLine

__all__ = ["StatsdListener", "kernel_drops"]

log = logging.getLogger("vitals.statsd")

_RCVBUF = 32 * 1024 * 1024
_SO_RCVBUFFORCE: int = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux; absent from typeshed


def kernel_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped on `sock` (Linux /proc/net/udp{,6} `drops`), else None."""
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if len(cols) >= 13 and cols[9] == inode:
                        return int(cols[12])
    except (OSError, ValueError, StopIteration):
        return None
    return None


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, listener: StatsdListener) -> None:
        self.listener = listener

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.listener.receive(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %r", exc)


class StatsdListener:
    def __init__(self, settings: Settings, producer: Any, telemetry: Telemetry, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.producer = producer
        self.telemetry = telemetry
        self.clock = clock
        self.tenant = settings.statsd_tenant
        self.agg = Aggregator(max_entries=settings.statsd_max_buffer)
        self.port: int | None = None
        self.datagrams = 0
        self.lines = 0
        self.malformed = 0
        self.oversized = 0
        self.kafka_dropped = 0
        #: a Kafka outage is said once, then at most once a minute with the count lost
        self._said = RateLimitedLog(log, every_s=60.0)
        self.events = 0
        self.last_malformed: str | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._sock: socket.socket | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._last_log = 0.0
        self._logged = 0
        self._max = settings.statsd_max_datagram

    async def start(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in s.statsd_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        # A deep receive buffer rides out scheduling stalls. SO_RCVBUFFORCE passes the
        # net.core.rmem_max cap when the process may (CAP_NET_ADMIN); else the capped size.
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF)
        sock.bind((s.statsd_host, s.statsd_port or 0))
        sock.setblocking(False)
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        self._transport = transport
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._flusher = asyncio.create_task(self._flush_loop(), name="statsd-flush")

    def receive(self, data: bytes) -> None:
        """Handle one datagram (called on the event loop for each one received)."""
        self.datagrams += 1
        if len(data) > self._max:
            self.oversized += 1
            return
        now = self.clock()
        feed = self.agg.feed
        for line in data.split(b"\n"):
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                continue
            try:
                feed(line, now)
            except MalformedLine as exc:
                self.malformed += 1
                self.last_malformed = f"{exc}: {line[:120]!r}"
                continue
            self.lines += 1

    def publish_telemetry(self) -> None:
        t = self.telemetry
        t.set("vitals_statsd_datagrams_total", self.datagrams)
        t.set("vitals_statsd_lines_total", self.lines)
        t.set("vitals_statsd_malformed_total", self.malformed)
        t.set("vitals_statsd_events_total", self.events)
        t.set("vitals_statsd_dropped_total", self.oversized, reason="oversized")
        t.set("vitals_statsd_dropped_total", self.agg.dropped, reason="buffer_full")
        t.set("vitals_statsd_dropped_total", self.kafka_dropped, reason="kafka")
        if self._transport is not None:
            sock = self._transport.get_extra_info("socket")
            drops = kernel_drops(sock) if sock is not None else None
            if drops is not None:
                t.set("vitals_statsd_dropped_total", drops, reason="kernel")
        if self.malformed > self._logged and time.monotonic() - self._last_log > 10:
            self._last_log = time.monotonic()
            self._logged = self.malformed
            log.warning("%d malformed DogStatsD lines so far; latest: %s", self.malformed,
                        self.last_malformed)

    async def flush(self) -> None:
        """Publish everything aggregated so far and wait until Kafka acknowledged it."""
        async with self._flush_lock:
            events = self.agg.drain(self.tenant)
            try:
                for e in events:
                    await self.producer.send("metrics", e)
                await self.producer.flush()
                self.events += len(events)
            except Exception as exc:  # Kafka down or refusing: count, keep listening
                lost = sum(int(e["count"]) for e in events)
                self.kafka_dropped += lost
                self._said.warning("kafka", "could not publish %d metric events (%d samples; "
                                   "%d lost so far, vitals_statsd_dropped_total{reason=kafka}): "
                                   "%r", len(events), lost, self.kafka_dropped, exc)
            else:
                self._said.clear("kafka")
            self.publish_telemetry()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.statsd_flush_s)
            await self.flush()

    def _drain_socket(self, limit: int = 100_000) -> None:
        """Read what the kernel still holds (datagrams sent just before a stop)."""
        if self._sock is None:
            return
        for _ in range(limit):
            try:
                data = self._sock.recv(65_536)
            except OSError:  # BlockingIOError: empty
                return
            self.receive(data)

    async def stop(self) -> None:
        """Stop listening, read what is left in the socket, publish everything (≤ 10 s)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        if self._transport is not None:
            self._drain_socket()
            self._transport.close()
            self._transport = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=10)
