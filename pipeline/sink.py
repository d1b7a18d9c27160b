"""The sink step of every agent: decode a batch of Kafka messages, write their rows to
ClickHouse, dead-letter what is invalid. The agent acks the batch only after `write` returns.

Delivery contract: `write` returns only once ClickHouse accepted every row of the batch and every
dead-letter record was acknowledged by Kafka. Storage faults (unavailable, or an insert refused
for good) are retried with capped exponential backoff for as long as it takes (the agent stops
pulling meanwhile, so Kafka holds the backlog: backpressure, not unbounded buffering). Rows
are keyed by source position, so a retry or a redelivery after a crash never counts twice.

Poison: an invalid event is dead-lettered alone (see `decode_envelope`); a message whose
processing raises (a builder bug tripped by its content) is dead-lettered whole with reason
`processing failed: <error>`, its half-built rows are rolled back, and the batch moves on. Every
dead letter counts toward the topic's `DlqAlarm` (see `pipeline.dlq_alert`).

Fault points `before_insert` and `after_insert` (see `pipeline.faults`) sit in `write`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import orjson

from pipeline.aggregation import RegistryCache, SinkBatch, Table
from pipeline.decode import Reject, decode_envelope, decode_structs
from pipeline.dlq_alert import DlqAlarm
from pipeline.errors import StorageError, StorageUnavailable
from pipeline.faults import FaultInjector
from pipeline.settings import Settings
from pipeline.storage import AsyncStore
from pipeline.telemetry import Telemetry
from pipeline.topics import KINDS, kind

__all__ = ["DeadLetter", "DlqSender", "Message", "Prepared", "Sink"]

log = logging.getLogger("vitals.sink")

DlqSender = Callable[[str, bytes | None, bytes, list[tuple[str, bytes]]], Awaitable[None]]
#: A dead-letter record: (message key, JSON value, `vitals-reason` header value).
DeadLetter = tuple[bytes | None, bytes, bytes]


@dataclass(frozen=True)
class Prepared:
    """One batch, decoded and built: the rows per table and the dead-letter records."""

    messages: int
    batch: SinkBatch
    dead: list[DeadLetter]
    tables: list[Table]


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
                 max_backoff_s: float = 10.0, faults: FaultInjector | None = None,
                 registry: RegistryCache | None = None) -> None:
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
        self.faults = faults
        #: Registry rows already written by this process (None: every batch writes its own).
        self.registry = registry
        self._cpu = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"decode-{kind}")
        self.alarm = DlqAlarm(ratio=settings.dlq_alert_ratio, window_s=settings.dlq_alert_window_s,
                              min_events=settings.dlq_alert_min_events, clock=clock)
        telemetry.set("vitals_dlq_alert", 0, topic=settings.topics.topic(kind))

    def build(self, messages: Sequence[Message]) -> tuple[SinkBatch, list[DeadLetter]]:
        """Pure part: rows for the batch, and the dead-letter records."""
        s = self.settings
        batch = SinkBatch()
        dead: list[DeadLetter] = []
        now_ms = int(self.clock() * 1000)
        build = kind(self.kind).build
        build_structs = kind(self.kind).build_structs if self.gate is None else None
        limits = {"now_ms": now_ms, "max_future_ms": s.max_future_s * 1000,
                  "max_bytes": s.max_message_bytes, "max_age_ms": s.retention_days * 86_400_000}
        for m in messages:
            mark = batch.checkpoint()
            try:
                if build_structs is not None:
                    fast = decode_structs(m.value, self.kind, **limits)
                    if fast is not None:
                        build_structs(batch, m.partition, m.offset, *fast)
                        continue
                decoded = decode_envelope(m.value, self.kind, **limits)
                events = decoded.events
                if events and self.gate is not None:
                    events, refused = self.gate.admit(events)
                    decoded.rejects += [Reject(i, r, orjson.dumps(e)) for i, r, e in refused]
                if events:
                    build(batch, m.partition, m.offset, events)
            except Exception as exc:
                batch.rollback(mark)
                reason = f"processing failed: {type(exc).__name__}: {exc}"[:1000]
                log.error("%s[%d]@%d dead-lettered: %s", m.topic, m.partition, m.offset, reason,
                          exc_info=exc)
                self.telemetry.inc("vitals_processing_errors_total", topic=m.topic)
                payload = (m.value or b"")[:65536]
                batch.add_dead_letter(m.topic, m.partition, m.offset, None, reason, payload)
                dead.append(_dead_letter(m, None, reason, payload, b"processing-error"))
                continue
            for r in decoded.rejects:
                batch.add_dead_letter(m.topic, m.partition, m.offset, r.index, r.reason, r.payload)
                dead.append(_dead_letter(m, r.index, r.reason, r.payload, b"invalid"))
        return batch, dead

    async def prepare(self, messages: Sequence[Message]) -> Prepared:
        """Decode, validate and build the batch's rows on the sink's own thread, so the event
        loop (Kafka fetches, heartbeats, the API in embedded mode) keeps running meanwhile."""
        if self.gate is not None:
            await self.gate.prepare(self.store)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._cpu, self._prepare, messages)

    def _prepare(self, messages: Sequence[Message]) -> Prepared:
        batch, dead = self.build(messages)
        return Prepared(len(messages), batch, dead, batch.tables(self.registry))

    async def persist(self, prepared: Prepared) -> SinkBatch:
        """Dead-letter, then insert (retrying transient faults for as long as it takes).
        Returns once ClickHouse accepted every row and Kafka every dead-letter record."""
        batch, dead = prepared.batch, prepared.dead
        for key, value, why in dead:
            await self.send_dlq(self.dlq_topic, key, value, [("vitals-reason", why)])
        if self.faults is not None:
            self.faults.hit("before_insert")
        await self._insert_with_retry(prepared.tables)
        if self.registry is not None:
            self.registry.written(*batch.registry_rows)
        if self.faults is not None:
            self.faults.hit("after_insert")
        topic = self.settings.topics.topic(self.kind)
        self._watch_dead_letters(topic, batch.events + len(dead), len(dead))
        self.telemetry.inc("vitals_messages_consumed_total", prepared.messages, topic=topic)
        self.telemetry.inc("vitals_events_consumed_total", batch.events, topic=topic)
        if dead:
            rejected = len(batch.rows.get("dead_letters", ()))
            self.telemetry.inc("vitals_events_rejected_total", rejected, topic=topic)
            self.telemetry.inc("vitals_dlq_messages_total", len(dead), topic=topic)
        return batch

    async def write(self, messages: Sequence[Message]) -> SinkBatch:
        """`prepare` then `persist`: the whole sink step for one batch."""
        return await self.persist(await self.prepare(messages))

    def _watch_dead_letters(self, topic: str, seen: int, dead: int) -> None:
        changed = self.alarm.record(seen, dead)
        self.telemetry.set("vitals_dlq_ratio", round(self.alarm.ratio, 6), topic=topic)
        if changed is None:
            return
        self.telemetry.set("vitals_dlq_alert", 1 if changed else 0, topic=topic)
        a = self.alarm
        if changed:
            log.warning("DLQ alert on %s: %d of %d events (%.1f%%) dead-lettered in the last "
                        "%d s, above the %.1f%% limit (VITALS_DLQ_ALERT_RATIO); is a producer "
                        "broken? see %s", topic, a.dead, a.seen, 100 * a.ratio, a.window_s,
                        100 * a.threshold, self.dlq_topic)
        else:
            log.warning("DLQ alert on %s cleared: %.1f%% dead-lettered in the last %d s",
                        topic, 100 * a.ratio, a.window_s)

    async def _insert_with_retry(self, tables: list[Table]) -> None:
        """Insert every table, retrying with capped exponential backoff until ClickHouse accepts.

        Unavailability (connection, timeout, overload codes) is the usual cause. An insert
        ClickHouse refuses for good (a schema changed by hand, a constraint, permissions) is
        retried the same way, logged as an error and counted in `vitals_insert_errors_total`:
        the rows passed validation, so the cause is the store, and the batch waits for it to
        be fixed rather than being dropped or dead-lettered (nothing is acked meanwhile)."""
        delay = 0.1
        while True:
            started = time.perf_counter()
            try:
                for table, names, columns in tables:
                    await self.store.insert(table, columns, names)
            except StorageUnavailable as exc:
                self.telemetry.inc("vitals_insert_retries_total", topic=self.kind)
                log.warning("ClickHouse unavailable (%s); retrying in %.1f s", exc, delay)
            except StorageError as exc:
                self.telemetry.inc("vitals_insert_retries_total", topic=self.kind)
                self.telemetry.inc("vitals_insert_errors_total", topic=self.kind)
                log.error("ClickHouse refused the %s batch insert (%s); retrying in %.1f s "
                          "until the cause is fixed, nothing is acked meanwhile",
                          self.kind, exc, delay)
            else:
                self.telemetry.observe("vitals_insert_seconds", time.perf_counter() - started,
                                       topic=self.kind)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff_s)


def _dead_letter(m: Message, index: int | None, reason: str, payload: bytes,
                 why: bytes) -> DeadLetter:
    return (m.key, orjson.dumps({
        "topic": m.topic, "partition": m.partition, "offset": m.offset, "index": index,
        "reason": reason, "payload": payload[:65536].decode("utf-8", "replace"),
    }), why)
