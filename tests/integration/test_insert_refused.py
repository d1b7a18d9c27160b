"""ClickHouse refusing an insert for good (not a connection fault: here a CHECK constraint
every row violates) stalls the batch, not the worker: the batch is retried with backoff and
counted in `vitals_insert_errors_total`, nothing is acked or dead-lettered meanwhile, and once the
cause is removed the same worker stores every event exactly once."""

from __future__ import annotations

import asyncio
import time

from pipeline.producer import Producer


def request(i: int, ts: float) -> dict:
    return {"v": 1, "type": "request", "ts": ts, "endpoint_id": 9, "status": 200,
            "latency_ms": 10.0 + i}


async def test_refused_insert_is_retried_until_the_cause_is_fixed(stack_factory):
    stack = await stack_factory(batch_max_seconds=0.05)
    s = stack.settings
    db = s.clickhouse_database
    await stack.rt.store.command(  # type: ignore[union-attr]
        f"ALTER TABLE {db}.requests_raw ADD CONSTRAINT refuse_all CHECK latency_ms < 0")
    now = time.time()
    async with Producer(s.kafka_bootstrap, s.topics) as p:
        await p.send_many("requests", [request(i, now) for i in range(5)])
    tel = stack.rt.telemetry
    deadline = time.monotonic() + 60
    while tel.value("vitals_insert_errors_total", topic="requests") < 2:
        assert time.monotonic() < deadline, tel.render()[:2000]
        await asyncio.sleep(0.1)
    assert await stack.rows("SELECT count() FROM {db}.requests_raw") == [(0,)]
    assert await stack.rows("SELECT count() FROM {db}.dead_letters") == [(0,)]
    assert tel.value("vitals_events_consumed_total", topic=s.topics.requests) == 0
    # the worker is alive and waiting on the same batch: fix the cause, the rows arrive
    await stack.rt.store.command(  # type: ignore[union-attr]
        f"ALTER TABLE {db}.requests_raw DROP CONSTRAINT refuse_all")
    await stack.wait_requests(5)
    assert await stack.rows("SELECT count(), sum(latency_ms) FROM {db}.requests_raw") == [
        (5, sum(10.0 + i for i in range(5)))]
    assert tel.value("vitals_events_consumed_total", topic=s.topics.requests) == 5
    # and later traffic flows as usual
    async with Producer(s.kafka_bootstrap, s.topics) as p:
        await p.send_many("requests", [request(i, now) for i in range(5, 8)])
    await stack.wait_requests(8)
