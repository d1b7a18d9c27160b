"""The single-process ceiling: a raw aiokafka consumer reading the pre-produced envelopes.

Three passes over the same topic, each from the beginning with a fresh consumer:

- ``consume``: fetch only (aiokafka + broker cost);
- ``decode``: fetch + the worker's decoding per message — **the ceiling** the e2e figure is
  compared with (what one Python process can do before any row building or storage): JSON
  parse and validation into msgspec structs (`pipeline.ingest.decode.decode_structs`, the columnar
  fast path), `decode_envelope` for a message it declines;
- ``aggregate``: fetch + `Sink.build` (decode + the pure row building of
  pipeline/ingest/rows/requests.py, batches of `batch` messages) + `SinkBatch.tables()` (the Native
  block the insert sends) — everything the worker does except faust and ClickHouse.

Run in its own process by bench.e2e: ``python -m bench.ceiling --bootstrap B --topic T --events N``;
prints one JSON object as the last stdout line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from pipeline.core.settings import Settings
from pipeline.core.telemetry import Telemetry
from pipeline.ingest.decode import decode_envelope, decode_structs
from pipeline.ingest.sink import Message, Sink

__all__ = ["measure"]

FETCH_BYTES = 8 * 1024 * 1024  # the worker's consumer_max_fetch_size


async def _pass(bootstrap: str, topic: str, events: int, mode: str, batch: int) -> dict[str, Any]:
    settings = Settings()
    sink = Sink("requests", settings, None, None, Telemetry())  # type: ignore[arg-type]  # build() only
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
        enable_auto_commit=False, max_partition_fetch_bytes=FETCH_BYTES,
        fetch_max_bytes=FETCH_BYTES * 4,
    )
    await consumer.start()
    try:
        seen = messages = 0
        pending: list[Message] = []
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        while seen < events:
            got = await consumer.getmany(timeout_ms=1000, max_records=1000)
            if not got and time.perf_counter() - t0 > 120:
                raise RuntimeError(f"{mode}: only {seen} of {events} events after 120 s")
            for records in got.values():
                for r in records:
                    messages += 1
                    if mode == "consume":
                        seen += r.value.count(b'"type":"request"')
                    elif mode == "decode":
                        limits = {"now_ms": int(time.time() * 1000),
                                  "max_future_ms": settings.max_future_s * 1000,
                                  "max_bytes": settings.max_message_bytes}
                        fast = decode_structs(r.value, "requests", **limits)
                        seen += (len(fast[0]) if fast is not None else
                                 len(decode_envelope(r.value, "requests", **limits).events))
                    else:
                        pending.append(Message(r.topic, r.partition, r.offset, r.key, r.value))
                        if len(pending) >= batch:
                            seen += _build(sink, pending)
            if pending and mode == "aggregate":
                seen += _build(sink, pending)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    finally:
        await consumer.stop()
    return {"mode": mode, "events": seen, "messages": messages, "seconds": elapsed,
            "events_per_s": seen / elapsed, "cpu_s": cpu}


def _build(sink: Sink, pending: list[Message]) -> int:
    batch, _dead = sink.build(pending)
    batch.tables()
    pending.clear()
    return batch.events


async def measure(bootstrap: str, topic: str, events: int, batch: int) -> dict[str, Any]:
    out = {}
    for mode in ("consume", "decode", "aggregate"):
        out[mode] = await _pass(bootstrap, topic, events, mode, batch)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--events", type=int, required=True)
    p.add_argument("--batch", type=int, default=200, help="messages per Sink.build batch")
    a = p.parse_args(argv)
    out = asyncio.run(measure(a.bootstrap, a.topic, a.events, a.batch))
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


if __name__ == "__main__":
    main()
