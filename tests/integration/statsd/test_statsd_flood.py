"""A flood of new series against a small buffer: memory stays bounded, the excess is dropped
and counted, the listener keeps serving, and what it accepted reaches Kafka exactly."""

from __future__ import annotations

import asyncio
import socket
import uuid

from pipeline.core.settings import Settings, TopicNames
from pipeline.core.telemetry import Telemetry
from pipeline.ingest.topic_admin import ensure_topics
from pipeline.sdk.producer import Producer
from pipeline.statsd.listener import StatsdListener
from tests.integration.statsd.test_statsd_cli import read_events


async def test_flood_is_bounded_and_counted(kafka_bootstrap):
    topics = TopicNames(f"flood{uuid.uuid4().hex[:8]}-")
    await ensure_topics(kafka_bootstrap, [topics.topic("metrics")], partitions=1)
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topics=topics, statsd_port=0,
                        statsd_flush_s=3600, statsd_max_buffer=1000)
    telemetry = Telemetry()
    async with Producer(kafka_bootstrap, topics, validate=False) as producer:
        listener = StatsdListener(settings, producer, telemetry, clock=lambda: 1_795_000_000.5)
        await listener.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent = 0
        for batch in range(100):  # 5000 distinct series, 50 lines a datagram
            lines = [f"flood.s{batch * 50 + i}:1|c|#k:v".encode() for i in range(50)]
            sock.sendto(b"\n".join(lines), ("127.0.0.1", listener.port))
            sent += 50
            if batch % 10 == 9:
                await asyncio.sleep(0.01)  # let the loop read
        for _ in range(200):
            if listener.lines + listener.malformed >= sent:
                break
            await asyncio.sleep(0.05)
        assert listener.lines == sent and len(listener.agg) == 1000
        assert listener.agg.dropped == sent - 1000
        # still serving: an existing series-second is updated, not dropped
        sock.sendto(b"flood.s0:5|c|#k:v", ("127.0.0.1", listener.port))
        await asyncio.sleep(0.2)
        assert listener.agg.dropped == sent - 1000
        await listener.flush()
        assert telemetry.value("vitals_statsd_dropped_total", reason="buffer_full") == sent - 1000
        await listener.stop()
        sock.close()
    events = await asyncio.to_thread(read_events, kafka_bootstrap, topics.topic("metrics"),
                                     1001)
    assert len(events) == 1000 and sum(e["count"] for e in events) == 1001
    assert sum(e["sum"] for e in events) == 1000 + 5
