"""Which wait a batch gets (`pipeline.ingest.worker._add_agent`): a trickling topic is written
once its first message waited `VITALS_BATCH_MAX_SECONDS`, a busy one (a batch of
`BUSY_BATCH_BYTES` or more) after a quarter of it. The wait is 8 s here, so the two rules are
seconds apart; the bounds leave the machine's own delays a wide margin."""

from __future__ import annotations

import time

import orjson

from pipeline.ingest.worker import BUSY_BATCH_BYTES
from pipeline.sdk.producer import Producer

WAIT_S = 8.0


def event(i: int, ts: float) -> dict:
    return {"v": 1, "type": "request", "ts": ts, "endpoint_id": 5, "status": 200,
            "latency_ms": 10.0 + i % 100, "worker_id": i}


async def test_a_trickle_waits_the_whole_wait_and_a_busy_topic_a_quarter(stack_factory):
    stack = await stack_factory(batch_max_seconds=WAIT_S)
    s = stack.settings

    async def stored() -> int:
        return int((await stack.rows("SELECT count() FROM {db}.requests_raw FINAL"))[0][0])

    now = time.time()
    big = orjson.dumps([event(i, now) for i in range(500)])
    messages = BUSY_BATCH_BYTES // len(big) + 1
    async with Producer(s.kafka_bootstrap, s.topics, validate=False) as p:
        sent = time.monotonic()
        await p.send_raw(s.topics.requests, orjson.dumps([event(0, now)]), b"5")
        await stack.wait_for(stored, 1, timeout=60)
        trickle = time.monotonic() - sent
        sent = time.monotonic()
        for _ in range(messages):
            await p.send_raw(s.topics.requests, big, b"5")
        await stack.wait_for(stored, 1 + 500 * messages, timeout=60)
        busy = time.monotonic() - sent
    # the trickle: its first (only) message waited the whole wait (a quarter's slack: the take
    # that brought it yields up to a quarter after it arrived)
    assert trickle >= WAIT_S - 0.5, trickle
    # busy: written at the take's next quarter, not after the whole wait
    assert busy < WAIT_S / 4 + 3.0 < WAIT_S - 0.5, busy
