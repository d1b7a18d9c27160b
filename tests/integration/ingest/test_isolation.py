"""No single message stops a topic. What ClickHouse refuses alone is isolated and dead-lettered
with ClickHouse's reason while the rest of its batch is stored; a refusal every message gets (a
dropped table) holds the topic loudly — `/readyz` 503, `vitals_topic_stalled` 1, one log line —
and recovers by itself; a message too large to dead-letter as it is still is, cut to fit."""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from aiokafka import AIOKafkaProducer

from pipeline.storage.clickhouse import migrate
from tests.integration.ingest.test_dead_letters import good, read_dlq
from tests.promtool import check_metrics


async def publish(bootstrap: str, topic: str, values: list[tuple[bytes | None, bytes]]) -> None:
    """Each value as its own Kafka message, in order, with one raw producer."""
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=12 << 20,
                         linger_ms=20)
    await p.start()
    try:
        for key, value in values:
            await p.send(topic, value, key=key)
        await p.flush()
    finally:
        await p.stop()


async def wait_value(probe, expected, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while (got := probe()) != expected:
        assert time.monotonic() < deadline, f"waited for {expected!r}, last {got!r}"
        await asyncio.sleep(0.1)


async def test_the_message_storage_refuses_is_isolated_and_the_rest_stored(stack_factory):
    stack = await stack_factory(batch_max_seconds=0.5)
    s, tel = stack.settings, stack.rt.telemetry
    db = s.clickhouse_database
    await stack.rt.store.command(  # type: ignore[union-attr]
        f"ALTER TABLE {db}.requests_raw ADD CONSTRAINT no_777 CHECK latency_ms != 777")
    now = time.time()
    messages = [orjson.dumps([good(10 * m + i, now) for i in range(3)]) for m in range(8)]
    messages[5] = orjson.dumps([good(50, now), {**good(51, now), "latency_ms": 777}])
    await publish(s.kafka_bootstrap, s.topics.requests,  # type: ignore[arg-type]
                  [(b"5", v) for v in messages])
    stored = 7 * 3
    await stack.wait_requests(stored)
    assert await stack.rows("SELECT count(), sum(latency_ms) FROM {db}.requests_raw FINAL") == [
        (stored, sum(10.0 + 10 * m + i for m in range(8) if m != 5 for i in range(3)))]
    dead = await stack.rows("SELECT topic, src_offset, src_index, reason FROM "
                            "{db}.dead_letters")
    assert [(t, o, i) for t, o, i, _ in dead] == [(s.topics.requests, 5, -1)]
    assert "storage refused" in dead[0][3] and "no_777" in dead[0][3]
    (record,) = await read_dlq(s.kafka_bootstrap, s.topics.dlq("requests"), 1)  # type: ignore[arg-type]
    assert (record["offset"], record["index"]) == (5, None)
    assert orjson.loads(record["payload"])[1]["latency_ms"] == 777
    assert tel.value("vitals_messages_isolated_total", topic=s.topics.requests) == 1
    assert tel.value("vitals_topic_stalled", topic=s.topics.requests) == 0
    # the partition moved on: later traffic flows
    await publish(s.kafka_bootstrap, s.topics.requests,  # type: ignore[arg-type]
                  [(b"5", orjson.dumps([good(100, now)]))])
    await stack.wait_requests(stored + 1)


async def test_a_dropped_table_holds_the_topic_loudly_and_recovers(stack_factory, caplog):
    caplog.set_level(logging.ERROR, logger="vitals.sink")
    stack = await stack_factory(batch_max_seconds=0.1)
    s, tel, store = stack.settings, stack.rt.telemetry, stack.rt.store
    assert store is not None
    db = s.clickhouse_database
    now = time.time()
    await store.command(f"DROP TABLE {db}.heartbeats_raw")
    beats = [{"v": 1, "type": "heartbeat", "ts": now, "endpoint_id": 4, "id": w,
              "max_perf": 10.0 + w} for w in range(3)]
    await publish(s.kafka_bootstrap, s.topics.heartbeats,  # type: ignore[arg-type]
                  [(b"4", orjson.dumps(b)) for b in beats])
    topic = s.topics.heartbeats
    await wait_value(lambda: tel.value("vitals_topic_stalled", topic=topic), 1)
    r = await stack.http.get("/readyz")
    assert r.status_code == 503
    assert topic in r.text and "stalled" in r.text and "UNKNOWN_TABLE" in r.text
    metrics = (await stack.http.get("/metrics")).text
    check_metrics(metrics)
    assert f'vitals_topic_stalled{{topic="{topic}"}} 1' in metrics
    await asyncio.sleep(3)  # several retries: still one log line for the cause
    stalls = [r for r in caplog.records if "stalled" in r.getMessage()]
    assert len(stalls) == 1, [r.getMessage() for r in stalls]
    assert await stack.rows("SELECT count() FROM {db}.dead_letters") == [(0,)]
    # restore the table: the held batch is stored, the topic and readiness recover by themselves
    await store.call(lambda st: migrate(st, retention=s.retention))
    await stack.wait_for(lambda: stack.rows("SELECT count(), sum(max_perf) FROM "
                                            "{db}.heartbeats_raw FINAL"), [(3, 33.0)])
    await wait_value(lambda: tel.value("vitals_topic_stalled", topic=topic), 0)
    assert stack.rt.health.get(f"agent:{topic}").state == "consuming"  # type: ignore[union-attr]
    assert await stack.rows("SELECT count() FROM {db}.dead_letters") == [(0,)]


async def test_a_9_mib_key_is_dead_lettered_cut_to_fit_and_nothing_stalls(stack_factory):
    stack = await stack_factory(batch_max_seconds=0.1)
    s, tel = stack.settings, stack.rt.telemetry
    now = time.time()
    huge_key = b"k" * (9 << 20)
    await publish(s.kafka_bootstrap, s.topics.requests,  # type: ignore[arg-type]
                  [(huge_key, b"not json at all"), (b"5", orjson.dumps([good(1, now)]))])
    await stack.wait_requests(1)
    (record,) = await read_dlq(s.kafka_bootstrap, s.topics.dlq("requests"), 1)  # type: ignore[arg-type]
    assert record["offset"] == 0 and record["reason"].startswith("invalid JSON")
    assert record["key_bytes"] == 9 << 20 and len(record["key_sha256"]) == 64
    assert await stack.rows("SELECT src_offset, reason LIKE 'invalid JSON%' "
                            "FROM {db}.dead_letters") == [(0, 1)]
    assert tel.value("vitals_topic_stalled", topic=s.topics.requests) == 0
    assert tel.value("vitals_dlq_produce_errors_total", topic=s.topics.requests) == 0
