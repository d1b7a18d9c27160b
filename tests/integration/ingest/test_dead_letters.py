"""Malformed input ends in `<topic>.dlq` with its reason and source position; the good events
of the same envelopes and the messages after them still count."""

from __future__ import annotations

import time

import orjson
from aiokafka import AIOKafkaConsumer

from pipeline.sdk.producer import Producer
from tests.promtool import check_metrics


def good(i: int, ts: float) -> dict:
    return {"v": 1, "type": "request", "ts": ts, "endpoint_id": 5, "status": 200,
            "latency_ms": 10.0 + i}


async def read_dlq(bootstrap: str, topic: str, n: int, timeout: float = 30) -> list[dict]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None)
    await consumer.start()
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(orjson.loads(r.value) for r in records)
    finally:
        await consumer.stop()
    return out


async def test_bad_events_go_to_dlq_and_the_stream_moves_on(stack_factory):
    stack = await stack_factory()
    s = stack.settings
    now = time.time()
    mixed = [
        good(0, now),
        {**good(1, now), "status": "200"},                         # wrong type
        {k: v for k, v in good(2, now).items() if k != "endpoint_id"},  # missing field
        {**good(3, now), "ts": now + 3600},                        # far future
        {**good(4, now), "type": "heartbeat_typo"},                # unknown type
        {**good(5, now), "surprise": 1},                           # unknown field
        good(6, now * 1000),                                       # ms timestamp: fine
        {**good(7, now), "latency_ms": -1},                        # out of range
    ]
    huge = b"[" + b",".join([orjson.dumps(good(0, now))] * 55_000) + b"]"
    assert len(huge) > 5 * 1000 * 1000
    async with Producer(s.kafka_bootstrap, s.topics, validate=False) as p:
        await p.send_raw(s.topics.requests, orjson.dumps(mixed), b"5")     # offset 0
        await p.send_raw(s.topics.requests, b"{not json", b"5")            # offset 1
        await p.send_raw(s.topics.requests, huge, b"5")                    # offset 2
        await p.send_raw(s.topics.requests, b"[]", b"5")                   # offset 3
        await p.send_raw(s.topics.requests, b"42", b"5")                   # offset 4
        await p.send_raw(s.topics.requests, orjson.dumps([good(8, now), good(9, now)]), b"5")
    await stack.wait_for(lambda: stack.rows("SELECT count() FROM {db}.requests_raw FINAL"), [(4,)])
    dlq = await read_dlq(s.kafka_bootstrap, s.topics.dlq("requests"), 10)
    got = sorted(((d["offset"], d["index"], d["reason"]) for d in dlq),
                 key=lambda x: (x[0], -1 if x[1] is None else x[1]))
    assert [(o, i) for o, i, _ in got] == [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 7),
                                          (1, None), (2, None), (3, None), (4, None)]
    reasons = [r for _, _, r in got]
    assert reasons[0] == "status: expected integer, got string"
    assert reasons[1] == "endpoint_id: required field is missing"
    assert reasons[2].startswith("ts: ") and "in the future" in reasons[2]
    assert reasons[3].startswith("type: 'heartbeat_typo' is not an event type of this topic")
    assert reasons[4] == "unknown field(s) surprise"
    assert reasons[5] == "latency_ms: -1 is below the minimum 0"
    assert reasons[6].startswith("invalid JSON")
    assert reasons[7] == f"message of {len(huge)} bytes exceeds the 4194304-byte limit"
    assert reasons[8] == "empty envelope: an array needs at least one event"
    assert reasons[9] == "envelope must be a JSON object or an array of objects"
    assert all(d["topic"] == s.topics.requests and d["partition"] == 0 for d in dlq)
    # the good events are stored with their source positions
    rows = await stack.rows("SELECT src_offset, src_index, latency_ms FROM {db}.requests_raw "
                            "FINAL ORDER BY src_offset, src_index")
    assert rows == [(0, 0, 10.0), (0, 6, 16.0), (5, 0, 18.0), (5, 1, 19.0)]
    # a batch's tables are written one after another: wait for the last of them
    await stack.wait_for(lambda: stack.rows("SELECT count() FROM {db}.dead_letters FINAL"),
                         [(10,)])
    metrics = (await stack.http.get("/metrics")).text
    check_metrics(metrics)
    assert f'vitals_events_rejected_total{{topic="{s.topics.requests}"}} 10' in metrics
    assert f'vitals_events_consumed_total{{topic="{s.topics.requests}"}} 4' in metrics
