"""A refusal that every message of a batch gets alone (here a CHECK constraint no row passes) is
the store's, not the data's: the topic is held — stalled in `Health` and
`vitals_topic_stalled`, counted in `vitals_insert_errors_total` — nothing is acked or
dead-lettered, and once the cause is removed the same sink stores every event exactly once. A
single message refused with a data-dependent code is isolated instead (test_isolation.py)."""

from __future__ import annotations

import asyncio
import time

import orjson

from pipeline.core.telemetry import Telemetry
from pipeline.ingest.sink import Message, Sink


def request(i: int, ts: float) -> dict:
    return {"v": 1, "type": "request", "ts": ts, "endpoint_id": 9, "status": 200,
            "latency_ms": 10.0 + i}


async def test_a_refusal_every_message_gets_holds_the_topic_until_fixed(stack_factory):
    stack = await stack_factory()
    s, store = stack.settings, stack.rt.store
    assert store is not None
    db = s.clickhouse_database
    await store.command(f"ALTER TABLE {db}.requests_raw ADD CONSTRAINT refuse_all "
                        "CHECK latency_ms < 0")
    now = time.time()
    dead: list[bytes] = []

    async def send_dlq(_t: str, _k: bytes | None, value: bytes, _h: object) -> None:
        dead.append(value)

    tel = Telemetry()
    sink = Sink("requests", s, store, send_dlq, tel, health=stack.rt.health, max_backoff_s=0.2)
    topic = s.topics.requests
    messages = [Message(topic, 0, m, b"9", orjson.dumps([request(3 * m + i, now)
                                                        for i in range(3)]))
                for m in range(3)]
    writing = asyncio.create_task(sink.write(messages))
    deadline = time.monotonic() + 30
    while tel.value("vitals_insert_errors_total", topic="requests") < 2:
        assert time.monotonic() < deadline, tel.render()[:2000]
        await asyncio.sleep(0.05)
    assert not writing.done()
    assert tel.value("vitals_topic_stalled", topic=topic) == 1
    check = stack.rt.health.get(f"agent:{topic}")
    assert check is not None and check.state == "stalled" and "refuse_all" in (check.reason or "")
    assert await stack.rows("SELECT count() FROM {db}.requests_raw") == [(0,)]
    assert dead == [] and await stack.rows("SELECT count() FROM {db}.dead_letters") == [(0,)]
    # fix the cause: the held batch is stored, exactly once, and the stall clears
    await store.command(f"ALTER TABLE {db}.requests_raw DROP CONSTRAINT refuse_all")
    await asyncio.wait_for(writing, timeout=30)
    assert await stack.rows("SELECT count(), sum(latency_ms) FROM {db}.requests_raw FINAL") == [
        (9, sum(10.0 + i for i in range(9)))]
    assert tel.value("vitals_topic_stalled", topic=topic) == 0
    assert tel.value("vitals_events_consumed_total", topic=topic) == 9
    assert stack.rt.health.get(f"agent:{topic}").state == "consuming"  # type: ignore[union-attr]
    assert dead == []
