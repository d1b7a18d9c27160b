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
dead letter counts toward the topic's `DlqAlarm` (see `pipeline.ingest.dlq_alert`), and every
dead-letter record fits any producer limit (`pipeline.ingest.dlq`).

Storage errors, by type (`pipeline.storage.clickhouse.translate`):
- `StorageUnavailable`: the batch is retried with capped exponential backoff, offsets held.
- `StorageRefused`: the batch is bisected down to the messages ClickHouse refuses alone
  (`pipeline.ingest.isolate`); those are dead-lettered with ClickHouse's reason and counted in
  `vitals_messages_isolated_total`, the rest is stored, and the partition moves on. A refusal
  that every message of the batch gets alone is the store's (a dropped table, a grant): the
  topic is held and retried with backoff.
- `StorageFault` (no known class): held and retried with backoff, and `on_fault` is told (the
  `vitals worker` process exits non-zero so that its supervisor restarts it).
Whatever holds the topic sets its `Health` check `agent:<topic>` to "stalled" with the cause
(`/readyz` 503), sets `vitals_topic_stalled{topic}` to 1, and logs one ERROR line per cause per
minute; all three clear by themselves on the next stored batch.

Fault points `before_insert` and `after_insert` (see `pipeline.core.faults`) sit in `write`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import orjson

from pipeline.core.errors import StorageError, StorageFault, StorageRefused, StorageUnavailable
from pipeline.core.faults import FaultInjector
from pipeline.core.health import Health
from pipeline.core.log_limit import RateLimitedLog
from pipeline.core.settings import Settings
from pipeline.core.telemetry import Telemetry
from pipeline.ingest.decode import Reject, decode_envelope, decode_structs
from pipeline.ingest.dlq import DeadLetter, dead_letter, fit_payload, fit_reason
from pipeline.ingest.dlq_alert import DlqAlarm
from pipeline.ingest.isolate import is_store_wide, refused_leaves
from pipeline.ingest.rows.requests import RegistryCache, SinkBatch, Table
from pipeline.ingest.topics import KINDS, kind
from pipeline.storage.clickhouse import AsyncStore

__all__ = ["DeadLetter", "DlqSender", "Message", "Prepared", "Sink"]

log = logging.getLogger("vitals.sink")

DlqSender = Callable[[str, bytes | None, bytes, list[tuple[str, bytes]]], Awaitable[None]]


@dataclass(frozen=True)
class Prepared:
    """One batch, decoded and built: the rows per table and the dead-letter records."""

    messages: int
    batch: SinkBatch
    dead: list[DeadLetter]
    tables: list[Table]
    #: The batch's messages, to rebuild a part of it when storage refuses the whole.
    source: Sequence[Message] = ()


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
                 registry: RegistryCache | None = None, health: Health | None = None,
                 on_fault: Callable[[StorageFault], None] | None = None) -> None:
        self.kind = kind
        self.settings = settings
        self.store = store
        self.send_dlq = send_dlq
        self.telemetry = telemetry
        self.clock = clock
        self.max_backoff_s = max_backoff_s
        self.topic = settings.topics.topic(kind)
        self.dlq_topic = settings.topics.dlq(kind)
        self.health = health or Health(clock)
        self.on_fault = on_fault
        self._said = RateLimitedLog(log, 60.0)
        self._held_since: float | None = None
        telemetry.set("vitals_topic_stalled", 0, topic=self.topic)
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
                  "max_bytes": s.max_message_bytes, "max_age_ms": s.max_age_ms(self.kind)}
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
                reason = fit_reason(f"processing failed: {type(exc).__name__}: {exc}")
                self._said.error(("processing", type(exc)), "%s[%d]@%d dead-lettered: %s",
                                 m.topic, m.partition, m.offset, reason)
                self.telemetry.inc("vitals_processing_errors_total", topic=m.topic)
                payload = fit_payload(m.value or b"")
                batch.add_dead_letter(m.topic, m.partition, m.offset, None, reason, payload)
                dead.append(dead_letter(m.topic, m.partition, m.offset, m.key, None, reason,
                                        m.value or b"", b"processing-error"))
                continue
            for r in decoded.rejects:
                batch.add_dead_letter(m.topic, m.partition, m.offset, r.index, r.reason, r.payload)
                dead.append(dead_letter(m.topic, m.partition, m.offset, m.key, r.index, r.reason,
                                        r.payload, b"invalid"))
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
        return Prepared(len(messages), batch, dead, batch.tables(self.registry), messages)

    async def persist(self, prepared: Prepared) -> SinkBatch:
        """Dead-letter, then insert (see the module docstring for what storage errors do).
        Returns once ClickHouse accepted every row that is not dead-lettered, and Kafka every
        dead-letter record."""
        batch, dead = prepared.batch, prepared.dead
        for key, value, why in dead:
            await self._send_dead_letter(key, value, why)
        if self.faults is not None:
            self.faults.hit("before_insert")
        isolated = await self._store(prepared)
        if self.registry is not None and not isolated:
            self.registry.written(*batch.registry_rows)
        if self.faults is not None:
            self.faults.hit("after_insert")
        topic = self.topic
        self._watch_dead_letters(topic, batch.events + len(dead), len(dead) + isolated)
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

    async def _insert(self, tables: list[Table]) -> None:
        started = time.perf_counter()
        for table, names, columns in tables:
            await self.store.insert(table, columns, names)
        self.telemetry.observe("vitals_insert_seconds", time.perf_counter() - started,
                               topic=self.kind)

    async def _store(self, prepared: Prepared) -> int:
        """Insert the batch; on a refusal, isolate and dead-letter what storage refuses. Retries
        with capped exponential backoff while the store is away or refuses everything. Returns
        how many messages were isolated."""
        delay = 0.1
        while True:
            try:
                try:
                    await self._insert(prepared.tables)
                    isolated = 0
                except StorageRefused as exc:
                    isolated = await self._isolate(prepared, exc)
            except StorageUnavailable as exc:
                self.telemetry.inc("vitals_insert_retries_total", topic=self.kind)
                self._hold("unavailable", f"ClickHouse unavailable: {exc}", warn=delay < 1)
            except _StoreWide as exc:
                self.telemetry.inc("vitals_insert_retries_total", topic=self.kind)
                self.telemetry.inc("vitals_insert_errors_total", topic=self.kind)
                self._hold(("refused", exc.refusal.code),
                           f"ClickHouse refuses every message of the batch alone: {exc.refusal}")
            except StorageFault as exc:
                self.telemetry.inc("vitals_insert_retries_total", topic=self.kind)
                self.telemetry.inc("vitals_insert_errors_total", topic=self.kind)
                self._hold(("fault", type(exc.__cause__)), f"storage failed: {exc}")
                if self.on_fault is not None:
                    self.on_fault(exc)
            else:
                self._resume()
                return isolated
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff_s)

    async def _isolate(self, prepared: Prepared, first: StorageRefused) -> int:
        """Bisect the batch down to the messages storage refuses alone; dead-letter those."""
        source = prepared.source
        if not source:
            raise _StoreWide(first)

        async def attempt(part: Sequence[Message]) -> None:
            loop = asyncio.get_running_loop()
            rebuilt = await loop.run_in_executor(self._cpu, self._prepare, part)
            await self._insert(rebuilt.tables)

        refused = await refused_leaves(source, attempt, first)
        if is_store_wide(len(source), refused):
            raise _StoreWide(refused[0][1])
        rows = SinkBatch()
        for m, exc in refused:
            reason = fit_reason(f"storage refused: {exc}")
            payload = fit_payload(m.value or b"")
            rows.add_dead_letter(m.topic, m.partition, m.offset, None, reason, payload)
            key, value, why = dead_letter(m.topic, m.partition, m.offset, m.key, None, reason,
                                          m.value or b"", b"storage-refused")
            await self._send_dead_letter(key, value, why)
            self._said.error(("isolated", exc.code), "%s[%d]@%d dead-lettered: %s",
                             m.topic, m.partition, m.offset, reason)
        await self._insert(rows.tables())
        self.telemetry.inc("vitals_messages_isolated_total", len(refused), topic=self.topic)
        self.telemetry.inc("vitals_dlq_messages_total", len(refused), topic=self.topic)
        return len(refused)

    async def _send_dead_letter(self, key: bytes | None, value: bytes, why: bytes) -> None:
        """Produce one dead-letter record, retrying with backoff until Kafka takes it (a record
        always fits, so only the broker's absence fails it); each failure is counted."""
        delay = 0.1
        while True:
            try:
                await self.send_dlq(self.dlq_topic, key, value, [("vitals-reason", why)])
                return
            except Exception as exc:  # the Kafka client's errors, whatever their type
                self.telemetry.inc("vitals_dlq_produce_errors_total", topic=self.topic)
                self._said.warning(("dlq", type(exc)), "producing to %s failed (%s: %s); "
                                   "retrying, the partition waits", self.dlq_topic,
                                   type(exc).__name__, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff_s)

    def _hold(self, cause: object, reason: str, *, warn: bool = False) -> None:
        """The topic cannot move on: say so in readiness, metrics and (once a minute) the log.
        A first short unavailability is only a warning: it usually passes within a retry."""
        if self._held_since is None:
            self._held_since = time.monotonic()
        reason = fit_reason(reason)
        if warn:
            self._said.warning(cause, "%s: %s; retrying, nothing is acked meanwhile",
                               self.topic, reason)
            return
        self.health.report(f"agent:{self.topic}", "stalled", reason)
        self.telemetry.set("vitals_topic_stalled", 1, topic=self.topic)
        self._said.error(cause, "%s stalled: %s; retrying with backoff, nothing is acked "
                         "meanwhile", self.topic, reason)

    def _resume(self) -> None:
        if self._held_since is None:
            return
        held = time.monotonic() - self._held_since
        self._held_since = None
        check = self.health.get(f"agent:{self.topic}")
        if check is not None and check.state == "stalled":
            self.health.report(f"agent:{self.topic}", "consuming")
            log.warning("%s resumed after %.1f s held", self.topic, held)
        self.telemetry.set("vitals_topic_stalled", 0, topic=self.topic)
        self._said = RateLimitedLog(log, 60.0)


class _StoreWide(StorageError):
    """Every message of the batch was refused alone: the store's cause, not the data's."""

    def __init__(self, refusal: StorageRefused) -> None:
        super().__init__(str(refusal), code=refusal.code, name=refusal.name)
        self.refusal = refusal
