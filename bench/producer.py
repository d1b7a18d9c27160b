"""Producer SDK throughput, as a ratio to a raw aiokafka producer of the same envelopes.

One run starts a private broker and publishes the same N request events (bench.loadgen's
`EventGen`, generated before any clock starts, event times within the last minute) five ways,
each to a fresh topic, each timed from the first call to the last acknowledgement:

1. **raw aiokafka**: the envelopes the SDK would build (500 events per endpoint key, JSON
   arrays), encoded beforehand, sent by one idempotent `AIOKafkaProducer` (acks=all) with the
   SDK's own client settings (1 MiB batches, 16 MiB requests, linger 5 ms) — the ceiling of
   the Kafka client alone, with no validation and no batching work (before 2026-12-03 this
   way used 16 KiB batches and 1 MiB requests, which halved its rate: ratios measured
   before then are against that slower baseline);
2. **Producer.send**: one `await producer.send("requests", event)` per event, then `flush()`;
3. **Producer.send_many**: one call with all events;
4. **SyncProducer.send**: one blocking call per event, as the README's "Ten lines" does;
5. **SyncProducer.send_many**: one blocking call with all events.

The SDK validates every event exactly as the worker does (`validate=True`, the default).

Usage (from the repo root)::

    python -m bench.producer                 # 1,000,000 events per way
    python -m bench.producer --events 200000 --ways raw,async_send

Figures are printed and appended to bench/results.md (unless --no-record).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from bench.loadgen import EventGen
from bench.procstat import machine_info
from pipeline.core.settings import TopicNames
from pipeline.ingest.topic_admin import ensure_topics
from pipeline.local.kafka import LocalKafka
from pipeline.sdk.envelopes import EnvelopeBuffer
from pipeline.sdk.event_encoder import event_key
from pipeline.sdk.producer import ENVELOPE_BYTES, ENVELOPE_EVENTS, Producer, SyncProducer
from pipeline.sdk.producer_kafka import client_options

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench.producer")
WAYS = ("raw", "async_send", "async_send_many", "sync_send", "sync_send_many")


def _events(n: int) -> list[dict[str, Any]]:
    gen = EventGen(endpoints=8)
    start = time.time() - 60
    return [gen.event(start + 60 * i / n) for i in range(n)]


def _envelopes(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """(key, value) of the envelopes the SDK builds for these events, in its order."""
    buf = EnvelopeBuffer(ENVELOPE_EVENTS, ENVELOPE_BYTES)
    out: list[tuple[bytes, bytes]] = []
    for e in events:
        _, closed = buf.add("t", event_key("requests", e), orjson.dumps(e), 0.0)
        if closed is not None:
            out.append((closed.key, closed.value()))
    out.extend((env.key, env.value()) for env in buf.take_all())
    return out


async def _raw(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> float:
    envelopes = _envelopes(events)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap,
                                **client_options(ENVELOPE_BYTES))  # the SDK's client settings
    await producer.start()
    try:
        t0 = time.perf_counter()
        futs = [await producer.send(topic, value, key=key) for key, value in envelopes]
        await asyncio.gather(*futs)
        return time.perf_counter() - t0
    finally:
        await producer.stop()


async def _async_send(bootstrap: str, topics: TopicNames, events: list[dict[str, Any]]) -> float:
    async with Producer(bootstrap, topics) as p:
        t0 = time.perf_counter()
        for e in events:
            await p.send("requests", e)
        await p.flush()
        return time.perf_counter() - t0


async def _async_send_many(bootstrap: str, topics: TopicNames,
                           events: list[dict[str, Any]]) -> float:
    async with Producer(bootstrap, topics) as p:
        t0 = time.perf_counter()
        await p.send_many("requests", events)
        await p.flush()
        return time.perf_counter() - t0


def _sync_send(bootstrap: str, topics: TopicNames, events: list[dict[str, Any]]) -> float:
    with SyncProducer(bootstrap, topics) as p:
        t0 = time.perf_counter()
        for e in events:
            p.send("requests", e)
        p.flush()
        return time.perf_counter() - t0


def _sync_send_many(bootstrap: str, topics: TopicNames, events: list[dict[str, Any]]) -> float:
    with SyncProducer(bootstrap, topics) as p:
        t0 = time.perf_counter()
        p.send_many("requests", events)
        p.flush()
        return time.perf_counter() - t0


async def _way(way: str, bootstrap: str, events: list[dict[str, Any]]) -> float:
    topics = TopicNames(f"benchp{uuid.uuid4().hex[:8]}-")
    await ensure_topics(bootstrap, [topics.requests], partitions=1)
    if way == "raw":
        return await _raw(bootstrap, topics.requests, events)
    if way == "async_send":
        return await _async_send(bootstrap, topics, events)
    if way == "async_send_many":
        return await _async_send_many(bootstrap, topics, events)
    sync: dict[str, Callable[..., float]] = {"sync_send": _sync_send,
                                            "sync_send_many": _sync_send_many}
    return await asyncio.to_thread(sync[way], bootstrap, topics, events)


async def run(args: argparse.Namespace) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="vitals-bench-producer-"))
    kafka = LocalKafka(work / "kafka", cache_dir=Path.home() / ".cache" / "vitals",
                       progress=lambda m: log.info("%s", m))
    rates: dict[str, float] = {}
    try:
        info = await asyncio.to_thread(kafka.start)
        events = _events(args.events)
        for way in args.ways:
            seconds = await _way(way, info.bootstrap, events)
            rates[way] = len(events) / seconds
            log.info("%-16s %9.0f events/s (%.2f s)", way, rates[way], seconds)
        return rates
    finally:
        await asyncio.to_thread(kafka.stop)
        shutil.rmtree(work, ignore_errors=True)


def render(args: argparse.Namespace, rates: dict[str, float], command: str) -> str:
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                         capture_output=True, check=False).stdout.strip()
    lines = [f"## Producer SDK — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, revision {rev}",
             "", f"`{command}` on {machine_info()}; {args.events:,} request events per way.", "",
             "| way | events/s | × raw aiokafka |", "| --- | --- | --- |"]
    raw = rates.get("raw")
    for way, rate in rates.items():
        ratio = f"{rate / raw:.2f}" if raw else "—"
        lines.append(f"| {way} | {rate:,.0f} | {ratio} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m bench.producer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--ways", type=lambda s: s.split(","), default=list(WAYS),
                   help=f"comma-separated subset of {','.join(WAYS)}")
    p.add_argument("--no-record", action="store_true")
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    unknown = set(args.ways) - set(WAYS)
    if unknown:
        p.error(f"unknown ways {sorted(unknown)}; allowed: {', '.join(WAYS)}")
    rates = asyncio.run(run(args))
    text = render(args, rates, "python -m bench.producer " + " ".join(argv))
    print(text)
    if not args.no_record:
        with (REPO / "bench" / "results.md").open("a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
