"""`vitals statsd`: the standalone listener process publishes to Kafka and flushes on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid

import orjson
from aiokafka import AIOKafkaConsumer


def test_vitals_statsd_subcommand(kafka_bootstrap, tmp_path):
    prefix = f"cli{uuid.uuid4().hex[:8]}-"
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap, "VITALS_TOPIC_PREFIX": prefix,
           "VITALS_STATSD_PORT": "0", "VITALS_STATSD_TENANT": "acme",
           "VITALS_DATA_DIR": str(tmp_path), "VITALS_STATSD_FLUSH_S": "60"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from pipeline.cli.main import main; raise SystemExit(main())",
         "statsd"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = None
        seen = []
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            m = re.search(r"udp://127\.0\.0\.1:(\d+) \(tenant 'acme'\)", line)
            if m:
                port = int(m.group(1))
            if "running; press Ctrl-C" in line:
                break
        assert port is not None, "".join(seen)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(10):
            s.sendto(b"cli.count:2|c|#k:v\ncli.count:oops|c", ("127.0.0.1", port))
        s.close()
        proc.send_signal(signal.SIGTERM)  # the final flush publishes what is aggregated
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, rest
    finally:
        if proc.poll() is None:
            proc.kill()
    events = read_events(kafka_bootstrap, prefix + "metrics", count=10)
    assert sum(e["sum"] for e in events) == 20 and sum(e["count"] for e in events) == 10
    assert {(e["tenant"], e["name"], e["kind"]) for e in events} == {("acme", "cli.count", "c")}
    assert all(e["tags"] == {"k": "v"} for e in events)


def read_events(bootstrap: str, topic: str, count: int) -> list[dict]:
    """Every event on `topic`, read until their `count` fields add up to `count` (or 30 s)."""
    import asyncio

    async def read() -> list[dict]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="earliest")
        await consumer.start()
        out: list[dict] = []
        deadline = time.monotonic() + 30
        try:
            while sum(e["count"] for e in out) < count and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        doc = orjson.loads(r.value)
                        out += doc if isinstance(doc, list) else [doc]
        finally:
            await consumer.stop()
        return out

    return asyncio.run(read())
