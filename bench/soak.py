"""Soak: a steady event rate through `vitals up` for a long time; worker RSS and consumer lag
over time, and the ledger at the end.

A private broker and a `vitals up` subprocess (embedded ClickHouse in a temp dir) run for
`--minutes` (default 20) while this process publishes `--rate` request events per second (plus
heartbeats) through the SDK, paced per 100 ms tick. Every `--sample` seconds it records the
worker's RSS (/proc/<pid>/status VmRSS) and the consumer group's lag (log end offsets minus
committed offsets, in messages). At the end it waits for the backlog to drain and checks that
the distinct stored event ids equal the acknowledged events (no loss, no duplicate).

Verdict: RSS is "bounded" when the last third's peak is within 15% of the middle third's peak
(the first third includes warm-up); lag "does not grow" when the last third's median lag is no
higher than the middle third's plus one second of traffic.

Usage (from the repo root)::

    python -m bench.soak                 # 20 minutes at 1000 events/s
    python -m bench.soak --minutes 3     # the shortened run recorded in RESULTS-faults.md
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.local.kafka import LocalKafka
from pipeline.sdk.producer import Producer
from tests.integration.faults.harness import VitalsProcess, names
from tests.integration.kafka_fixture import JAR_CACHE

__all__ = ["main"]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def lag(bootstrap: str, group: str, topics: list[str]) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        tps = [TopicPartition(t, p) for t in topics
               for p in (consumer.partitions_for_topic(t) or {0})]
        ends = await consumer.end_offsets(tps)
        return sum(ends[tp] - max(0, committed[tp].offset if tp in committed else 0)
                   for tp in tps)
    finally:
        await consumer.stop()
        await admin.close()


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="vitals-soak-"))
    kafka = LocalKafka(root / "kafka", cache_dir=JAR_CACHE, progress=lambda _m: None)
    info = await asyncio.to_thread(kafka.start, 120.0)
    _, topics, db, group = names()
    vp = VitalsProcess(root / "data", bootstrap=info.bootstrap, topics=topics, database=db,
                       group=group, partitions=args.partitions,
                       extra_env={"VITALS_BATCH_MAX_MESSAGES": "200",
                                  "VITALS_BATCH_MAX_SECONDS": "0.25"})
    acked = {"requests": 0, "heartbeats": 0}
    failed = 0

    def on_delivery(topic: str, items: list[bytes], error: BaseException | None) -> None:
        nonlocal failed
        if error is not None:
            failed += len(items)
        else:
            acked["requests" if topic.endswith("requests") else "heartbeats"] += len(items)

    samples: list[tuple[float, float, int]] = []
    try:
        await vp.start()
        assert vp.proc is not None
        pid = vp.proc.pid
        began = time.monotonic()
        end = began + args.minutes * 60
        sent = ticks = 0
        next_sample = began
        async with Producer(info.bootstrap, topics, on_delivery=on_delivery) as p:
            tick = began
            while tick < end:
                now = time.time()
                due = int((tick - began + 0.1) * args.rate) - sent
                for _ in range(max(0, due)):
                    await p.send("requests", {
                        "v": 1, "type": "request", "id": f"s{sent}", "ts": now,
                        "endpoint_id": sent % 50, "worker_id": sent % 7,
                        "status": 200 if sent % 13 else 503, "latency_ms": sent % 997 + 0.5})
                    sent += 1
                ticks += 1
                if ticks % 50 == 1:  # a heartbeat per endpoint every 5 s
                    for ep in range(50):
                        await p.send("heartbeats", {"v": 1, "type": "heartbeat", "ts": now,
                                                    "endpoint_id": ep, "id": ep,
                                                    "max_perf": 10.0})
                if time.monotonic() >= next_sample:
                    next_sample += args.sample
                    t = time.monotonic() - began
                    samples.append((t, rss_mib(pid), await lag(
                        info.bootstrap, group, [topics.requests, topics.heartbeats])))
                    print(f"t={t:6.0f} s  sent {sent:>9,}  worker RSS {samples[-1][1]:7.1f} MiB"
                          f"  lag {samples[-1][2]:>6,} messages", flush=True)
                tick += 0.1
                await asyncio.sleep(max(0.0, tick - time.monotonic()))
        drained_at = time.monotonic()
        want = acked["requests"]
        while time.monotonic() - drained_at < 300:
            rows = await vp.sql(f"SELECT uniqExact(event_id) AS ids, count() AS n "
                                f"FROM {db}.requests_raw FINAL")
            if rows[0]["ids"] >= want:
                break
            await asyncio.sleep(1)
        drain_s = time.monotonic() - drained_at
        rows = await vp.sql(f"SELECT uniqExact(event_id) AS ids, count() AS n "
                            f"FROM {db}.requests_raw FINAL")
        return {"samples": samples, "sent": sent, "acked": want, "failed": failed,
                "stored_ids": rows[0]["ids"], "stored_rows": rows[0]["n"], "drain_s": drain_s}
    finally:
        await vp.close()
        await asyncio.to_thread(kafka.stop)
        shutil.rmtree(root, ignore_errors=True)


def verdict(samples: list[tuple[float, float, int]], rate: float) -> tuple[str, str]:
    n = len(samples)
    if n < 6:
        return "too short", "too short"
    mid, last = samples[n // 3: 2 * n // 3], samples[2 * n // 3:]
    rss_mid, rss_last = max(s[1] for s in mid), max(s[1] for s in last)
    lag_mid = statistics.median(s[2] for s in mid)
    lag_last = statistics.median(s[2] for s in last)
    rss = (f"{'bounded' if rss_last <= rss_mid * 1.15 else 'GROWING'} (peak {rss_mid:.0f} MiB "
           f"in the middle third, {rss_last:.0f} MiB in the last)")
    lag_v = (f"{'not growing' if lag_last <= lag_mid + rate else 'GROWING'} (median "
             f"{lag_mid:.0f} messages in the middle third, {lag_last:.0f} in the last)")
    return rss, lag_v


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=1000.0, help="request events per second")
    p.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--partitions", type=int, default=2)
    args = p.parse_args(argv)
    out = asyncio.run(soak(args))
    rss, lag_v = verdict(out["samples"], args.rate)
    lost = out["acked"] - out["stored_ids"]
    dup = out["stored_rows"] - out["stored_ids"]
    print(f"\nsoak {args.minutes:g} min at {args.rate:g} events/s: sent {out['sent']:,}, "
          f"acknowledged {out['acked']:,}, failed {out['failed']}, stored {out['stored_ids']:,} "
          f"distinct ids, lost {lost}, duplicated {dup}; drained in {out['drain_s']:.1f} s")
    print(f"worker RSS: {rss}\nconsumer lag: {lag_v}")
    return 0 if lost == 0 and dup == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
