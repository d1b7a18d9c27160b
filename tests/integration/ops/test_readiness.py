"""`/readyz` tells the truth: ready with every check listed, 503 within 5 s of the broker going
away (while `/healthz` stays 200, and `/metrics` says `vitals_ready{check="broker"} 0`), ready
again by itself after the broker is back.

Runs on a private broker: stopping the session broker would disturb the other tests.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pipeline.local.kafka import LocalKafka
from tests.integration.kafka_fixture import JAR_CACHE


async def _until(stack: Any, status: int, timeout: float) -> tuple[float, dict[str, Any]]:
    t0 = time.monotonic()
    while True:
        r = await stack.http.get("/readyz")
        if r.status_code == status:
            return time.monotonic() - t0, r.json()
        assert time.monotonic() - t0 < timeout, (status, r.status_code, r.json())
        await asyncio.sleep(0.1)


async def test_readyz_follows_the_broker(stack_factory, tmp_path):
    kafka = LocalKafka(tmp_path / "broker", cache_dir=JAR_CACHE, progress=lambda _m: None)
    info = await asyncio.to_thread(kafka.start, 120.0)
    try:
        stack = await stack_factory(kafka_bootstrap=info.bootstrap, session_timeout_s=6)
        topic = stack.settings.topics.topic("requests")
        _, body = await _until(stack, 200, 60)
        assert body["status"] == "ready"
        checks = body["checks"]
        assert checks["storage"]["state"] == "ok" and checks["broker"]["state"] == "ok"
        assert checks[f"agent:{topic}"]["state"] == "consuming"
        for _ in range(100):  # the lag is known once a fetch answered (highwater)
            lag = (await stack.http.get("/readyz")).json()["checks"][f"agent:{topic}"]["lag"]
            if lag is not None:
                break
            await asyncio.sleep(0.1)
        assert lag == 0

        await asyncio.to_thread(kafka.stop)
        took, body = await _until(stack, 503, 5)
        assert body["error"] == "NOT_READY" and body["checks"]["broker"]["state"] == "down"
        assert "does not answer" in body["checks"]["broker"]["reason"]
        assert body["checks"]["storage"]["state"] == "ok"
        assert (await stack.http.get("/healthz")).status_code == 200
        metrics = (await stack.http.get("/metrics")).text
        assert 'vitals_ready{check="broker"} 0' in metrics
        assert 'vitals_ready{check="storage"} 1' in metrics
        print(f"\nreadyz 503 {took:.1f} s after the broker stopped")

        again = await asyncio.to_thread(kafka.start, 120.0)
        assert again.bootstrap == info.bootstrap
        took, body = await _until(stack, 200, 60)
        print(f"readyz 200 again {took:.1f} s after the broker answered")
        await stack.rt.stop()  # leave the group while the broker still runs
    finally:
        await asyncio.to_thread(kafka.stop)
