"""ClickHouse refusing writes for a while: the worker retries with backoff, commits nothing,
pauses the partition once its bounded buffer fills, and catches up with exact totals."""

from __future__ import annotations

import asyncio
import time

import orjson

from pipeline.core.errors import StorageUnavailable
from pipeline.sdk.producer import Producer
from tests.integration.faults.harness import committed
from tests.integration.faults.ledger import Ledger, check_ledger

N = 2500  # one event per message: enough messages to fill a 1000-message stream buffer


async def test_storage_outage_backpressure_then_exact_catch_up(stack_factory):
    stack = await stack_factory(stream_buffer=1000)
    s = stack.settings
    store = stack.rt.store
    assert store is not None
    real_insert = store.insert
    outage = {"down": True, "refused": 0}

    async def insert(table, columns, names):
        if outage["down"]:
            outage["refused"] += 1
            raise StorageUnavailable("injected outage: ClickHouse refuses writes")
        await real_insert(table, columns, names)

    store.insert = insert  # type: ignore[method-assign]

    async def sql(q: str) -> list[dict]:
        raw = await store.raw(q.replace("{db}", s.clickhouse_database), "JSONEachRow")
        return [orjson.loads(line) for line in raw.splitlines() if line.strip()]

    ledger = Ledger(s.topics)
    now = time.time()
    async with Producer(s.kafka_bootstrap, s.topics, max_events=1,
                        on_delivery=ledger.on_delivery) as p:
        for i in range(N):
            await p.send("requests", {"v": 1, "type": "request", "id": f"o{i}", "ts": now,
                                      "endpoint_id": 1, "status": 200, "latency_ms": i % 97})
    assert len(ledger.acked["requests"]) == N
    app = stack.rt.worker_app

    def paused() -> bool:
        return any(tp.topic == s.topics.requests for tp in app.consumer._buffered_partitions)

    deadline = time.monotonic() + 60
    while not (paused() and outage["refused"] >= 4) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    # backpressure: the partition is out of the fetcher, the buffer holds a bounded number of
    # messages, the sink keeps retrying, and not one offset was committed
    assert paused(), "the partition was never paused"
    assert outage["refused"] >= 4
    assert stack.rt.telemetry.value("vitals_insert_retries_total", topic="requests") >= 4
    assert await committed(s.kafka_bootstrap, s.consumer_group) == 0
    assert await sql("SELECT count() AS n FROM {db}.requests_raw") == [{"n": 0}]
    # the conductor's per-topic stream buffers (faust internals): bounded by maxsize
    queued = sum(ch.queue.qsize() for ch in app.topics._topics)
    assert queued > 0
    assert queued <= app.conf.stream_buffer_maxsize

    outage["down"] = False
    await stack.wait_requests(N)  # raw rows and every rollup view
    reports = await check_ledger(ledger, sql, s.clickhouse_database)
    assert reports["requests"].exact, reports["requests"].line()
    assert await stack.rows("SELECT sum(requests) FROM {db}.requests_1h FINAL") == [(N,)]
    await stack.wait_for(lambda: committed(s.kafka_bootstrap, s.consumer_group), N)
    assert not paused()
