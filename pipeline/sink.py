"""The sink step of every agent: decode a batch of Kafka messages, write their rows to
ClickHouse, dead-letter what is invalid. The agent acks the batch only after `write` returns.

Delivery contract: `write` returns only once ClickHouse accepted every row of the batch and every
dead-letter record was acknowledged by Kafka. Transient storage faults are retried with capped
exponential backoff for as long as it takes (the agent stops pulling meanwhile, so Kafka holds the
backlog: backpressure, not unbounded buffering). Rows are keyed by source position, so a retry or
a redelivery after a crash never counts twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import orjson

from pipeline.aggregation import SinkBatch
from pipeline.decode import Reject, decode_envelope
from pipeline.errors import StorageUnavailable
from pipeline.settings import Settings
from pipeline.storage import AsyncStore
from pipeline.telemetry import Telemetry
from pipeline.topics import KINDS, kind

__all__ = ["DlqSender", "Message", "Sink"]

log = logging.getLogger("vitals.sink")

DlqSender = Callable[[str, bytes | None, bytes, list[tuple[str, bytes]]], Awaitable[None]]


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Sink:
    def __init__(self, kind: str, settings: Settings, store: AsyncStore, send_dlq: DlqSender,
                 telemetry: Telemetry, *, clock: Callable[[], float] = time.time,
                 max_backoff_s: float = 10.0) -> None:
        self.kind = kind
        self.settings = settings
        self.store = store
        self.send_dlq = send_dlq
        self.telemetry = telemetry
        self.clock = clock
        self.max_backoff_s = max_backoff_s
        self.dlq_topic = settings.topics.dlq(kind)
        make_gate = KINDS[kind].gate
        self.gate = make_gate(settings, telemetry) if make_gate is not None else None

    def build(self, messages: Sequence[Message]
              ) -> tuple[SinkBatch, list[tuple[bytes | None, bytes]]]:
        """Pure part: rows for the batch, and the dead-letter records (key, value)."""
        s = self.settings
        batch = SinkBatch()
        dead: list[tuple[bytes | None, bytes]] = []
        now_ms = int(self.clock() * 1000)
        build = kind(self.kind).build
        for m in messages:
            decoded = decode_envelope(m.value, self.kind, now_ms=now_ms,
                                      max_future_ms=s.max_future_s * 1000,
                                      max_bytes=s.max_message_bytes,
                                      max_age_ms=s.retention_days * 86_400_000)
            events = decoded.events
            if events and self.gate is not None:
                events, refused = self.gate.admit(events)
                decoded.rejects += [Reject(i, r, orjson.dumps(e)) for i, r, e in refused]
            if events:
                build(batch, m.partition, m.offset, events)
            for r in decoded.rejects:
                batch.add_dead_letter(m.topic, m.partition, m.offset, r.index, r.reason, r.payload)
                dead.append((m.key, orjson.dumps({
                    "topic": m.topic, "partition": m.partition, "offset": m.offset,
                    "index": r.index, "reason": r.reason,
                    "payload": r.payload[:65536].decode("utf-8", "replace"),
                })))
        return batch, dead

    async def write(self, messages: Sequence[Message]) -> SinkBatch:
        if self.gate is not None:
            await self.gate.prepare(self.store)
        batch, dead = self.build(messages)
        for key, value in dead:
            await self.send_dlq(self.dlq_topic, key, value, [("vitals-reason", b"invalid")])
        await self._insert_with_retry(batch)
        topic = self.settings.topics.topic(self.kind)
        self.telemetry.inc("vitals_messages_consumed_total", len(messages), topic=topic)
        self.telemetry.inc("vitals_events_consumed_total", batch.events, topic=topic)
        if dead:
            rejected = len(batch.rows.get("dead_letters", ()))
            self.telemetry.inc("vitals_events_rejected_total", rejected, topic=topic)
            self.telemetry.inc("vitals_dlq_messages_total", len(dead), topic=topic)
        return batch

    async def _insert_with_retry(self, batch: SinkBatch) -> None:
        tables = batch.tables()
        delay = 0.1
        while True:
            started = time.perf_counter()
            try:
                for table, names, columns in tables:
                    await self.store.insert(table, columns, names)
            except StorageUnavailable as exc:
                self.telemetry.inc("vitals_insert_retries_total", topic=self.kind)
                log.warning("ClickHouse unavailable (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)
                continue
            self.telemetry.observe("vitals_insert_seconds", time.perf_counter() - started,
                                   topic=self.kind)
            return
