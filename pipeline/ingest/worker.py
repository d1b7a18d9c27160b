"""The faust-streaming app: one agent per topic, each a pipeline decode → sink → ack.

Commit-after-insert: the agents read `stream.noack().noack_take(n, within)`, so faust acks
nothing by itself; each batch is acked only after `Sink.persist` returned, i.e. after ClickHouse
accepted its rows. Faust then commits acked offsets. A worker killed before the acks gets the
whole batch again, and the source-keyed ReplacingMergeTree rows absorb the repeat.
Agent concurrency is 1 (faust can commit past an in-flight message with more). Within the agent
two batches overlap: batch N+1 is decoded and built (on the sink's thread) while batch N is
inserted; N is acked only after its insert returned and before N+1's insert starts, so acks
stay in offset order and at most one batch is unacked in ClickHouse at a time.

Backpressure: while a batch's insert waits for ClickHouse (`Sink.persist` retries with backoff),
the agent prepares at most one more batch and then pulls nothing; faust's stream buffer
(`stream_buffer_maxsize` messages per topic, `Settings.stream_buffer`) fills, at 80 % faust
removes the partition from the fetcher (`Consumer.on_buffer_full`), when full it stops
delivering, and fetching resumes once the buffer drained to 40 %. So a storage outage holds at
most about `stream_buffer_maxsize` + one fetch per topic in memory; the rest of the backlog
stays in Kafka, and no offset is committed until the rows are stored
(tests/integration/faults/test_storage_outage.py). The 40 % left at resume must outlast the
refill (a fetch through faust's consumer thread, up to ~1 s here): with 1,000 messages the agent
starved for up to a second at 150k events/s; 2,000 (the default) keeps it fed.

Fault injection (`Settings.fault`, tests only): one `FaultInjector` per app, shared by the sinks
(`before_insert`, `after_insert`), the agents (`after_commit`: the acked batch is committed, then
the process dies) and the partitions-revoked signal (`rebalance`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Literal, cast

import faust
from faust.tables import TableManager
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import StreamT, TransportT

from pipeline.core.errors import StorageFault
from pipeline.core.faults import FaultInjector
from pipeline.core.health import Health
from pipeline.core.log_limit import DemoteFilter
from pipeline.core.settings import Settings
from pipeline.core.telemetry import Telemetry
from pipeline.ingest.faust_types import AgentStream, StreamEvent, WorkerApp
from pipeline.ingest.rows.requests import RegistryCache
from pipeline.ingest.sink import Message, Prepared, Sink
from pipeline.ingest.topics import KINDS
from pipeline.storage.clickhouse import AsyncStore

__all__ = ["WORKER_KINDS", "create_worker_app"]

log = logging.getLogger("vitals.worker")

WORKER_KINDS = tuple(KINDS)


class _TablelessManager(TableManager):
    """faust's table manager without its start-up pause.

    faust's `TableManager.on_start` sleeps 1 s so that tables declared late are registered
    before recovery starts; the worker declares no faust tables (its state is in ClickHouse),
    so that second only delays the first fetch. Everything else is faust's own."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


#: How long the worker's Kafka client waits before retrying a failed fetch, metadata or
#: coordinator request. aiokafka's default (100 ms, not settable through faust) retries ~20
#: times a second with the broker away: a core's worth of work and log lines for nothing.
RETRY_BACKOFF_MS = 500


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads these when it builds its fetcher and coordinator (at start).
        consumer._client._retry_backoff = RETRY_BACKOFF_MS / 1000
        consumer._retry_backoff_ms = RETRY_BACKOFF_MS
        return consumer

    async def on_thread_stop(self) -> None:
        try:
            await super().on_thread_stop()
        except asyncio.CancelledError:
            # aiokafka's Fetcher.close() awaits the fetch requests it has just cancelled without
            # suppressing their CancelledError (one waiting out its retry backoff, e.g. right
            # after the broker was away): the fetcher is closed all the same, the client not.
            consumer = self._consumer
            if consumer is not None:
                await consumer._client.close()


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class _App(faust.App):
    """faust's App whose Kafka consumer backs off `RETRY_BACKOFF_MS` between retries."""

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self, loop=self.loop)


def create_worker_app(settings: Settings, store: AsyncStore, telemetry: Telemetry, *,
                      clock: Callable[[], float] = time.time,
                      kinds: tuple[str, ...] = WORKER_KINDS,
                      health: Health | None = None,
                      on_fault: Callable[[StorageFault], None] | None = None) -> WorkerApp:
    """The worker app; `health` (one per process) gets "agent:<topic>" = joining while the
    consumer group rebalances and consuming once partitions are assigned; a stall reported by
    the sink (or the readiness monitor) is left in place by the rebalance signals."""
    if not settings.kafka_bootstrap:
        raise ValueError("create_worker_app needs settings.kafka_bootstrap")
    DemoteFilter.install()  # faust's timer-overlap and slow-processing walls: DEBUG
    brokers = ";".join(f"kafka://{b.strip()}" for b in settings.kafka_bootstrap.split(","))
    datadir = settings.data_dir / "faust" / settings.consumer_group  # faust's default is the cwd
    datadir.mkdir(parents=True, exist_ok=True)
    app = _App(
        settings.consumer_group,
        broker=brokers,
        store="memory://",
        TableManager=_TablelessManager,
        datadir=str(datadir),
        autodiscover=False,
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=1000,
        broker_commit_interval=0.5,
        stream_wait_empty=False,
        stream_buffer_maxsize=max(settings.stream_buffer, settings.batch_max_messages * 2),
        consumer_max_fetch_size=8 * 1024 * 1024,
        producer_max_request_size=8 * 1024 * 1024,
        producer_acks=-1,
        broker_max_poll_records=1000,
        table_standby_replicas=0,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
    )

    async def send_dlq(topic: str, key: bytes | None, value: bytes,
                       headers: list[tuple[str, bytes]]) -> None:
        fut = await app.producer.send(topic, key, value, partition=None, timestamp=None,
                                      headers=headers)
        await fut

    faults = FaultInjector(settings.fault) if settings.fault is not None else None
    if faults is not None:
        log.warning("fault injection armed: %s (VITALS_FAULT; tests only)", settings.fault)
        fi = faults

        async def on_revoked(_sender: Any, /, *args: Any, signal: Any, **_kw: Any) -> None:
            revoked = args[0] if args else None
            if revoked:
                fi.hit("rebalance")

        app.on_partitions_revoked.connect(on_revoked)

    health = health if health is not None else Health(clock)
    _report_rebalances(app, health, [settings.topics.topic(k) for k in kinds])

    registry = RegistryCache()  # shared: request and heartbeat batches register the same keys
    for kind in kinds:
        _add_agent(app, kind, Sink(kind, settings, store, send_dlq, telemetry, clock=clock,
                                   faults=faults, registry=registry, health=health,
                                   on_fault=on_fault),
                   settings, faults)
    return app


def _report_rebalances(app: faust.App, health: Health, topics: list[str]) -> None:
    """joining from the start and on every rebalance, consuming once partitions are assigned
    (also with none assigned: a standby worker is ready). A stall is not the rebalance's to
    clear."""

    def report(state: Literal["joining", "consuming"]) -> None:
        for topic in topics:
            check = health.get(f"agent:{topic}")
            if check is None or check.state != "stalled":
                health.report(f"agent:{topic}", state, "consumer group rebalancing"
                              if state == "joining" else None)

    report("joining")
    rebalance_start = app.on_rebalance_start

    def on_rebalance_start() -> None:
        report("joining")
        rebalance_start()

    # faust calls this hook on the app instance; assigning it is its documented override
    app.on_rebalance_start = on_rebalance_start  # type: ignore[method-assign]

    async def on_assigned(_sender: Any, /, *args: Any, **_kw: Any) -> None:
        report("consuming")

    app.on_partitions_assigned.connect(on_assigned)


#: A batch holding this many message bytes is written after a quarter of
#: `VITALS_BATCH_MAX_SECONDS` (see `_add_agent`).
BUSY_BATCH_BYTES = 256 * 1024


def _add_agent(app: faust.App, kind: str, sink: Sink, settings: Settings,
               faults: FaultInjector | None) -> None:
    """One agent: batches of at most `batch_max_messages`, written when full, when they hold
    `BUSY_BATCH_BYTES` after a quarter of `batch_max_seconds`, or once their first message
    waited about `batch_max_seconds`.

    Why two waits: every write costs the engine a fixed ~60-110 ms of CPU for `requests_raw`
    and its views, whatever the batch's size. A topic that trickles (a demo, a quiet endpoint)
    is written once a second, not four times; a busy one (≥ ~1 MiB/s) every quarter second, so
    that its events are visible within about a second (bench/results.md, 2026-12-02 20:40 UTC:
    publish → visible p99 2.01 s at 75,000 events/s with one wait of 1 s, 0.67 s with 0.25 s).

    faust's `noack_take` yields every quarter of the wait while messages arrive, and not at all
    while none do; a small batch is kept (`pending`) between yields, and a timer task writes
    it once due when no yield comes. Both write under one lock, in arrival order."""
    topic = app.topic(settings.topics.topic(kind), key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")
    max_messages, max_wait = settings.batch_max_messages, settings.batch_max_seconds
    busy_wait = max_wait / 4

    async def agent(stream: StreamT[bytes]) -> None:
        # faust's StreamT lacks `noack`, and types `noack_take` as yielding values where it
        # yields the events: the stream as Vitals reads it (faust_types.AgentStream)
        manual = cast(AgentStream, stream).noack()
        inflight: asyncio.Task[None] | None = None
        pending: list[StreamEvent] = []
        pending_bytes = 0
        oldest = 0.0  # monotonic time the first pending message was taken
        lock = asyncio.Lock()

        async def persist_and_ack(prepared: Prepared, events: list[StreamEvent]) -> None:
            await sink.persist(prepared)
            for e in events:
                await manual.ack(e)
            if faults is not None:
                if faults.armed("after_commit"):
                    await app.consumer.commit()
                faults.hit("after_commit")

        async def write_pending() -> None:
            """Prepare the pending batch, then insert it once the previous one is stored
            (called under `lock`)."""
            nonlocal inflight, pending, pending_bytes
            events, pending, pending_bytes = pending, [], 0
            if not events:
                return
            messages = [Message(e.message.topic, e.message.partition, e.message.offset,
                                e.message.key, e.message.value) for e in events]
            prepared = await sink.prepare(messages)
            if inflight is not None:
                await inflight
            inflight = asyncio.create_task(persist_and_ack(prepared, events))

        async def write_when_due() -> None:
            """Write a small batch once its first message waited `max_wait`, when no yield of
            the stream came to do it."""
            while True:
                due = oldest + max_wait - time.monotonic() if pending else max_wait
                await asyncio.sleep(max(0.01, due))
                async with lock:
                    if pending and time.monotonic() - oldest >= max_wait:
                        await write_pending()

        timer = asyncio.create_task(write_when_due())
        try:
            async for events in manual.noack_take(max_messages, within=busy_wait):
                if timer.done():
                    timer.result()  # its error is the agent's
                if pending and len(pending) + len(events) > max_messages:
                    async with lock:  # no batch above max_messages
                        await write_pending()
                if not pending:
                    oldest = time.monotonic()
                pending.extend(events)
                pending_bytes += sum(len(e.message.value or b"") for e in events)
                if len(pending) < max_messages and pending_bytes < BUSY_BATCH_BYTES \
                        and time.monotonic() - oldest < max_wait:
                    continue
                async with lock:
                    await write_pending()
            async with lock:
                await write_pending()
            if inflight is not None:
                await inflight
        finally:
            timer.cancel()
            if inflight is not None and not inflight.done():
                inflight.cancel()  # unacked: redelivered after restart, absorbed by the keys

    agent.__name__ = f"ingest_{kind.replace('-', '_')}"
    app.agent(topic, name=f"vitals.{kind}", concurrency=1)(agent)
