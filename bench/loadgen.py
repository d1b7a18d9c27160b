"""Request-event load for the benchmarks: a deterministic event generator and two producer
entry points meant to run in their own process (so their CPU does not compete with the worker's
event loop; the machine has two cores).

``python -m bench.loadgen preload ...`` publishes N events as fast as the producer SDK allows and
exits; ``python -m bench.loadgen paced ...`` publishes at a fixed rate for a fixed time and sends a
probe event with a unique endpoint id every probe interval, recording each probe's publish time.
Both print one JSON object (their figures) as the last line of stdout.

The paced load replays a pool of envelopes encoded before the clock starts (500 events each,
one per endpoint key in turn, event times just before the start), so the generator's own CPU
does not cap the rate it can offer on a 2-core machine: building and validating events through
the SDK tops out near 30-60k events/s here. The worker decodes and stores every replayed event
like any other (rows are keyed by Kafka position, not content). Probes are fresh events sent
through the SDK.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson

from pipeline.core.settings import TopicNames
from pipeline.sdk.event_encoder import event_key
from pipeline.sdk.producer import Producer

__all__ = ["PROBE_BASE", "EventGen", "paced", "preload"]

#: Probe endpoint ids start here; load events use endpoint ids 1..endpoints.
PROBE_BASE = 1_000_000_000


class EventGen:
    """Valid `request` events (schemas/request.json) over `endpoints` endpoints, deterministic
    for a seed: ~2% 5xx, ~1% 4xx, ~0.5% timeouts, ~0.1% cold starts, log-normal latencies."""

    def __init__(self, endpoints: int = 8, seed: int = 7) -> None:
        self.endpoints = endpoints
        self.rng = random.Random(seed)
        self.n = 0

    def event(self, ts: float, endpoint_id: int | None = None) -> dict[str, Any]:
        r = self.rng
        self.n += 1
        ep = endpoint_id if endpoint_id is not None else 1 + self.n % self.endpoints
        worker = ep * 100 + r.randrange(4)
        roll = r.random()
        status, error_kind = 200, ""
        if roll < 0.02:
            status = 500
        elif roll < 0.03:
            status = 429
        elif roll < 0.035:
            status, error_kind = 504, "timeout"
        cold = roll > 0.999
        return {
            "v": 1, "type": "request", "ts": round(ts, 3), "endpoint_id": ep,
            "endpoint": f"bench-ep-{ep}", "autogroup_id": ep * 10 + worker % 2,
            "worker_id": worker, "status": status, "error_kind": error_kind,
            "latency_ms": round(r.lognormvariate(4.0, 0.8), 3),
            "queue_ms": round(r.expovariate(0.2), 3), "work_units": float(r.randrange(1, 64)),
            "tokens_in": r.randrange(1, 2048), "tokens_out": r.randrange(1, 512),
            "cold_start": cold, "cold_start_ms": 8500.0 if cold else 0.0,
            "gpu_seconds": round(r.random() * 0.2, 4), "bytes_out": r.randrange(100, 20000),
        }

    def spread(self, n: int, start: float, rate: float) -> Iterator[dict[str, Any]]:
        """`n` events whose event times advance at `rate` events/s from `start`."""
        for i in range(n):
            yield self.event(start + i / rate)


async def preload(bootstrap: str, prefix: str, events: int, endpoints: int,
                  ts_rate: float) -> dict[str, Any]:
    """Publish `events` events (envelopes of 500 per endpoint key) and wait for all acks."""
    gen = EventGen(endpoints)
    start = time.time() - events / ts_rate  # event times end now: never "in the future"
    t0 = time.perf_counter()
    async with Producer(bootstrap, TopicNames(prefix)) as producer:
        for e in gen.spread(events, start, ts_rate):
            await producer.send("requests", e)
        await producer.flush()
        sent = {"events": producer.sent_events, "messages": producer.sent_messages}
    elapsed = time.perf_counter() - t0
    return {**sent, "seconds": elapsed, "events_per_s": events / elapsed}


async def paced(bootstrap: str, prefix: str, rate: float, duration: float, probe_every: float,
                endpoints: int) -> dict[str, Any]:
    """Publish load at `rate` events/s for `duration` s plus one probe (endpoint id PROBE_BASE+k,
    event time = publish time) every `probe_every` s; return probes as (endpoint_id, sent_at)."""
    gen = EventGen(endpoints, seed=11)
    probes: list[tuple[int, float]] = []
    tick = 0.01
    topics = TopicNames(prefix)
    per_envelope = 500
    pool: list[tuple[bytes, bytes]] = []  # (key, envelope)
    events = gen.spread(per_envelope * 8 * endpoints, time.time() - 1.0, 1_000_000.0)
    by_key: dict[int, list[bytes]] = {}
    for e in events:
        items = by_key.setdefault(e["endpoint_id"], [])
        items.append(orjson.dumps(e))
        if len(items) == per_envelope:
            pool.append((event_key("requests", e), b"[" + b",".join(items) + b"]"))
            items.clear()
    async with Producer(bootstrap, topics) as producer:
        t0 = time.perf_counter()
        sent = 0
        next_probe = 0.0
        behind_max = 0.0
        while True:
            elapsed = time.perf_counter() - t0
            if elapsed >= duration:
                break
            if elapsed >= next_probe:
                ep = PROBE_BASE + len(probes)
                now = time.time()
                await producer.send("requests", gen.event(now, endpoint_id=ep))
                probes.append((ep, now))
                next_probe += probe_every
            due = int(rate * elapsed)
            behind_max = max(behind_max, (due - sent) / rate)
            while sent + per_envelope <= due:
                key, value = pool[(sent // per_envelope) % len(pool)]
                await producer.send_raw(topics.requests, value, key)
                sent += per_envelope
            await asyncio.sleep(max(0.0, tick - (time.perf_counter() - t0 - elapsed)))
        await producer.flush()
        elapsed = time.perf_counter() - t0
    return {"events": sent, "probes": probes, "seconds": elapsed,
            "events_per_s": sent / duration, "max_behind_s": behind_max}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    pre = sub.add_parser("preload")
    pre.add_argument("--events", type=int, required=True)
    pre.add_argument("--ts-rate", type=float, default=150_000.0,
                     help="event-time spacing, events per second of event time")
    pace = sub.add_parser("paced")
    pace.add_argument("--rate", type=float, required=True)
    pace.add_argument("--duration", type=float, required=True)
    pace.add_argument("--probe-every", type=float, default=0.1)
    for sp in (pre, pace):
        sp.add_argument("--bootstrap", required=True)
        sp.add_argument("--prefix", required=True)
        sp.add_argument("--endpoints", type=int, default=8)
    a = p.parse_args(argv)
    if a.cmd == "preload":
        out = asyncio.run(preload(a.bootstrap, a.prefix, a.events, a.endpoints, a.ts_rate))
    else:
        out = asyncio.run(paced(a.bootstrap, a.prefix, a.rate, a.duration, a.probe_every,
                                a.endpoints))
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


if __name__ == "__main__":
    main()
