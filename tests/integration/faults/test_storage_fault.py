"""A storage error of no known class is never retried silently: the topic is held and surfaced
(stalled in readiness and `vitals_topic_stalled`), and with `exit_on_storage_fault` — what
`vitals worker` runs with — the runtime's `storage_fault` fails, so the process exits non-zero
for its supervisor to restart it; after the fault is gone the same batch is stored once."""

from __future__ import annotations

import asyncio
import time

import pytest
from clickhouse_connect.driver import exceptions as dbx

from pipeline.cli.runtime import Runtime
from pipeline.core.errors import StorageFault
from pipeline.sdk.producer import Producer
from pipeline.storage.clickhouse import translate


async def test_an_unknown_storage_error_is_surfaced_and_fails_the_worker(settings):
    rt = Runtime(settings, api=False, statsd=False, exit_on_storage_fault=True)
    await rt.start()
    try:
        store = rt.store
        assert store is not None and rt.storage_fault is not None
        real_insert = store.insert
        broken = {"on": True}

        async def insert(table, columns, names):  # a driver failure of no known meaning
            if broken["on"] and table == "requests_raw":
                raise translate(dbx.InterfaceError("driver state lost"))
            await real_insert(table, columns, names)

        store.insert = insert  # type: ignore[method-assign]
        async with Producer(settings.kafka_bootstrap, settings.topics) as p:
            await p.send("requests", {"v": 1, "type": "request", "ts": time.time(),
                                      "endpoint_id": 3, "status": 200, "latency_ms": 5.0})
        with pytest.raises(StorageFault, match="InterfaceError: driver state lost"):
            await asyncio.wait_for(asyncio.shield(rt.storage_fault), timeout=60)
        topic = settings.topics.requests
        check = rt.health.get(f"agent:{topic}")
        assert check is not None and check.state == "stalled"
        assert "driver state lost" in (check.reason or "")
        assert rt.telemetry.value("vitals_topic_stalled", topic=topic) == 1
        assert rt.telemetry.value("vitals_events_consumed_total", topic=topic) == 0
        broken["on"] = False  # the held batch goes through once the fault is gone
        deadline = time.monotonic() + 60
        while rt.telemetry.value("vitals_events_consumed_total", topic=topic) < 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert await store.rows(f"SELECT count() FROM {store.database}.requests_raw FINAL") \
            == [(1,)]
        assert rt.telemetry.value("vitals_topic_stalled", topic=topic) == 0
    finally:
        await rt.stop()
