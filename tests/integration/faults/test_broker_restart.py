"""The broker restarted under load: the SDK producer (idempotent, acks=all) retries, the worker
reconnects and resumes, and the totals are exact.

Runs on a private broker (restarting the session broker could move its port under the other
tests); `LocalKafka.stop()` + `start()` on the same home keeps the port and the data.
"""

from __future__ import annotations

import asyncio
import time

from pipeline.local.kafka import LocalKafka
from pipeline.sdk.producer import Producer
from tests.integration.faults.harness import InProcess, assert_exact, trickle_through, workload
from tests.integration.faults.ledger import Ledger
from tests.integration.kafka_fixture import JAR_CACHE


async def test_broker_restart_under_load(stack_factory, tmp_path):
    kafka = LocalKafka(tmp_path / "broker", cache_dir=JAR_CACHE, progress=lambda _m: None)
    info = await asyncio.to_thread(kafka.start, 120.0)
    try:
        stack = await stack_factory(kafka_bootstrap=info.bootstrap, session_timeout_s=6)
        s = stack.settings
        ledger = Ledger(s.topics)
        t0, span = int(time.time()) - 400, 300
        requests, heartbeats = workload(1500, t0=t0, span_s=span)
        restarted = asyncio.Event()

        async def restart() -> None:
            await asyncio.to_thread(kafka.stop)
            await asyncio.sleep(1)
            again = await asyncio.to_thread(kafka.start, 120.0)
            assert again.bootstrap == info.bootstrap
            restarted.set()

        # a broker restart on a loaded 2-core machine can take longer than the default
        # delivery timeout (30 s): the SDK must ride through it, not give up
        async with Producer(s.kafka_bootstrap, s.topics, max_events=10, delivery_timeout_s=180,
                            on_delivery=ledger.on_delivery) as p:
            await trickle_through(p, requests, heartbeats, restart)
        assert restarted.is_set()
        assert not ledger.failed, {k: len(v) for k, v in ledger.failed.items()}
        lines = await assert_exact(InProcess(stack), ledger, t0=t0, span_s=span)
        print("\nbroker restart: " + "; ".join(lines))
        await stack.rt.stop()  # leave the group while the broker still runs
    finally:
        await asyncio.to_thread(kafka.stop)
