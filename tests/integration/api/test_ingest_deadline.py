"""HTTP ingest has a deadline: with the broker unreachable, `events.add_batch` answers 503 with
`Retry-After` within `VITALS_INGEST_TIMEOUT_S`, and retrying the same request once the broker is
back stores every event exactly once, even those the producer delivered after the 503.

Runs on a private broker (stopping the session broker would break the other tests);
`LocalKafka.stop()` + `start()` on the same home keeps the port and the data.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from pipeline.local.kafka import LocalKafka
from tests.integration.clearml.task_events_helpers import add_batch, count, log, scalar, wait_count
from tests.integration.kafka_fixture import JAR_CACHE

TIMEOUT_S = 2.0


async def test_ingest_answers_503_within_the_deadline_and_a_retry_does_not_duplicate(
        stack_factory, tmp_path):
    kafka = LocalKafka(tmp_path / "broker", cache_dir=JAR_CACHE, progress=lambda _m: None)
    info = await asyncio.to_thread(kafka.start, 120.0)
    try:
        stack = await stack_factory(kafka_bootstrap=info.bootstrap, ingest_timeout_s=TIMEOUT_S,
                                    session_timeout_s=6)
        key = await stack.key("acme", "admin")
        status, doc = await add_batch(stack, key, [scalar("t", 0, 1.0)])
        assert status == 200, doc
        await wait_count(stack, "task_metric_events", 1)

        await asyncio.to_thread(kafka.stop)
        batch = [scalar("t", i, float(i)) for i in range(1, 51)] + \
                [log("t", i, f"line {i}") for i in range(1, 51)]
        started = time.monotonic()
        r = await stack.http.post("/events.add_batch",
                                  content=b"\n".join(orjson.dumps(e) for e in batch),
                                  headers={"Authorization": f"Bearer {key}"})
        elapsed = time.monotonic() - started
        assert r.status_code == 503, r.text
        assert TIMEOUT_S <= elapsed < TIMEOUT_S + 1.5, elapsed
        assert r.headers["Retry-After"] == "5"
        doc = r.json()
        assert doc["error"] == "STORAGE_UNAVAILABLE"
        assert doc["details"] == {
            "events": 100, "timeout_s": TIMEOUT_S, "stored": "unknown",
            "retry": "send the same request again: a retry does not duplicate events"}

        again = await asyncio.to_thread(kafka.start, 120.0)
        assert again.bootstrap == info.bootstrap
        deadline = time.monotonic() + 60
        while True:  # the client retries after Retry-After until the broker answers
            status, doc = await add_batch(stack, key, batch)
            if status == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        assert (status, doc["data"]) == (200, {"added": 100, "errors": 0, "errors_info": {}})
        await wait_count(stack, "task_metric_events", 51)
        await wait_count(stack, "task_log_events", 50)
        # nothing else arrives later (the 503'd copies, if delivered, replaced the same rows)
        marker = log("t", 99, "marker")
        status, _ = await add_batch(stack, key, [marker])
        assert status == 200
        await wait_count(stack, "task_log_events", 51)
        assert await count(stack, "task_metric_events") == 51
        await stack.rt.stop()  # leave the group while the broker still runs
    finally:
        await asyncio.to_thread(kafka.stop)
