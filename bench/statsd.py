"""DogStatsD listener benchmark: lines/s the listener sustains into Kafka, drops counted.

A private local Kafka broker is started; the listener (`pipeline.statsd.listener`) runs in this
process with its producer; a sender process sends multi-line DogStatsD datagrams to
127.0.0.1 only, paced at `--rate` lines/s (0: as fast as it can), for at most `--seconds` and
at most `--max-lines` lines. Then the listener flushes, and the `metrics` topic is read back:
the sum of `count` over the events in Kafka must equal the lines the listener accepted.

Reported per rate: lines sent, lines accepted (and /s), datagrams dropped by the kernel (socket
buffer full: the listener fell behind), samples dropped by the bounded buffer, events and
messages in Kafka, the listener process's CPU seconds.

Usage (from the repo root)::

    python -m bench.statsd --rate 100000 --rate 200000 --seconds 10
    python -m bench.statsd --rate 0 --seconds 5 --series 5000

Figures are printed as a Markdown table; record them in bench/RESULTS-statsd.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from pipeline.core.settings import Settings, TopicNames
from pipeline.core.telemetry import Telemetry
from pipeline.ingest.topic_admin import ensure_topics
from pipeline.local.kafka import LocalKafka
from pipeline.sdk.producer import Producer
from pipeline.statsd.listener import StatsdListener, kernel_drops

log = logging.getLogger("bench.statsd")

SENDER = r"""
import json, socket, sys, time
port, rate, seconds, max_lines, per, series = (int(sys.argv[1]), float(sys.argv[2]),
    float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
kinds = ("c", "g", "h", "ms")
lines = [f"bench.m{i % series}:{(i * 7) % 1000 / 10}|{kinds[i % 4]}|#host:h{i % 10},env:bench"
         .encode() for i in range(max(series, per) * 4)]
grams = [b"\n".join(lines[j:j + per]) for j in range(0, len(lines) - per + 1, per)]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
addr = ("127.0.0.1", port)
sent = dgrams = 0
t0 = time.perf_counter()
deadline = t0 + seconds
g = 0
n = len(grams)
while sent < max_lines:
    now = time.perf_counter()
    if now >= deadline:
        break
    if rate > 0:
        due = int((now - t0) * rate)
        if sent >= due:
            time.sleep(0.0005)
            continue
        burst = min((due - sent) // per + 1, 200)
    else:
        burst = 200
    for _ in range(burst):
        try:
            sock.sendto(grams[g], addr)
        except (BlockingIOError, OSError):
            continue
        g = g + 1 if g + 1 < n else 0
        sent += per
        dgrams += 1
elapsed = time.perf_counter() - t0
print(json.dumps({"lines": sent, "datagrams": dgrams, "seconds": elapsed}))
"""


async def _read_back(bootstrap: str, topic: str, expect_count: float,
                     timeout: float = 60) -> tuple[int, int, float]:
    """(messages, events, sum of count) on `topic`, read until the counts add up."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=16 << 20,
                                fetch_max_bytes=64 << 20)
    await consumer.start()
    messages = events = 0
    total = 0.0
    deadline = time.monotonic() + timeout
    try:
        while total < expect_count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batch.values():
                for r in records:
                    messages += 1
                    doc = orjson.loads(r.value)
                    for e in doc if isinstance(doc, list) else [doc]:
                        events += 1
                        total += e["count"]
    finally:
        await consumer.stop()
    return messages, events, total


async def one_rate(bootstrap: str, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bstatsd{uuid.uuid4().hex[:8]}-"
    topics = TopicNames(prefix)
    await ensure_topics(bootstrap, [topics.topic("metrics")], partitions=1)
    settings = Settings(kafka_bootstrap=bootstrap, topics=topics, statsd_port=0,
                        statsd_flush_s=args.flush, statsd_max_buffer=args.max_buffer,
                        statsd_max_datagram=65_000)
    producer = Producer(bootstrap, topics, validate=False)
    await producer.start()
    listener = StatsdListener(settings, producer, Telemetry())
    await listener.start()
    assert listener.port is not None and listener._transport is not None
    sock = listener._transport.get_extra_info("socket")
    drops_before = kernel_drops(sock) or 0
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SENDER, str(listener.port), str(rate), str(args.seconds),
        str(args.max_lines), str(args.per_datagram), str(args.series),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    sent = json.loads(out)
    await asyncio.sleep(0.5)  # let the socket buffer drain
    await listener.flush()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    drops = (kernel_drops(sock) or 0) - drops_before
    await listener.stop()
    await producer.close()
    accepted = listener.lines - listener.agg.dropped
    messages, events, total = await _read_back(bootstrap, topics.topic("metrics"), accepted)
    return {
        "rate": rate, "sent_lines": sent["lines"], "sent_datagrams": sent["datagrams"],
        "send_seconds": sent["seconds"], "accepted_lines": listener.lines,
        "accepted_per_s": listener.lines / sent["seconds"],
        "kernel_drop_datagrams": drops, "buffer_drop_samples": listener.agg.dropped,
        "malformed": listener.malformed, "kafka_dropped": listener.kafka_dropped,
        "kafka_messages": messages, "kafka_events": events, "kafka_count_sum": total,
        "kafka_matches": total == accepted,
        "cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
    }


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="vitals-bench-statsd-"))
    kafka = LocalKafka(work / "kafka", cache_dir=Path.home() / ".cache" / "vitals",
                       progress=lambda m: log.info("%s", m))
    try:
        info = await asyncio.to_thread(kafka.start)
        results = []
        for rate in args.rate:
            log.info("rate %s lines/s for %g s", rate or "max", args.seconds)
            results.append(await one_rate(info.bootstrap, rate, args))
        return results
    finally:
        await asyncio.to_thread(kafka.stop)
        shutil.rmtree(work, ignore_errors=True)


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    head = ("| target lines/s | sent lines | accepted lines/s | kernel drops (datagrams) | "
            "buffer drops | Kafka events | Kafka count = accepted | listener CPU s |")
    rows = [head, "|" + "---|" * 8]
    for r in results:
        target = f"{int(r['rate']):,}" if r["rate"] else "max"
        rows.append(
            f"| {target} | {r['sent_lines']:,} | {r['accepted_per_s']:,.0f} | "
            f"{r['kernel_drop_datagrams']:,} | {r['buffer_drop_samples']:,} | "
            f"{r['kafka_events']:,} | {r['kafka_matches']} | {r['cpu_s']:.1f} |")
    rows.append(f"\n{args.per_datagram} lines per datagram, {args.series} series "
                f"(c, g, h, ms), {args.seconds:g} s per rate, flush every {args.flush:g} s.")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, action="append",
                   help="lines/s to send (repeatable; 0 = as fast as possible); "
                        "default 100000 and 200000")
    p.add_argument("--seconds", type=float, default=10.0, help="per rate (default 10, max 60)")
    p.add_argument("--max-lines", type=int, default=5_000_000,
                   help="cap on lines sent per rate (default 5M)")
    p.add_argument("--per-datagram", type=int, default=20, help="lines per datagram (20)")
    p.add_argument("--series", type=int, default=1000, help="distinct series (1000)")
    p.add_argument("--flush", type=float, default=0.5, help="listener flush interval (0.5 s)")
    p.add_argument("--max-buffer", type=int, default=200_000, help="listener buffer (200k)")
    args = p.parse_args(argv)
    args.rate = args.rate or [100_000.0, 200_000.0]
    args.seconds = min(args.seconds, 60.0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    results = asyncio.run(run(args))
    for r in results:
        print(json.dumps(r))
    print(table(results, args))


if __name__ == "__main__":
    main()
