"""Latency of `GET /v2/endpoints/{id}/metrics` (timeframe 24h, granularity 1m) over 10M requests,
and of the stats route (`POST /get_endpoint_stats/`, current mode and a 10-minute series) over
the same events.

Loads an embedded ClickHouse with the rollups of N request events (default 10,000,000) spread
evenly over 24 h for one endpoint (4 autogroups, 500 events per Kafka message, exactly as the
worker writes them: the pure `SinkBatch.add_requests` builder + `store.insert` into
`requests_raw`, whose materialized views fill the rollups), plus one heartbeat per worker every
10 s, then times the route in-process through the ASGI app (auth,
rate limit, parameters, ClickHouse reads, JSON encoding; no network). The response cache is off
for the main figures (every call recomputes; the shared reads, `VITALS_READ_CACHE_MS`, off
too); cached figures (`(cached)`, `(shared reads)`: the defaults) are printed apart. The
`polled, defaults` case is what a dashboard polling the 24 h document meets under `vitals up`'s
defaults: a call every `--poll-interval` s for `--poll-seconds`, the clock moving, documents
expiring after `VITALS_METRICS_CACHE_S` and recomputed ahead of expiry in the background (the
count of documents computed during the case is in its label).

Live ingest: while the calls run, a background task writes one more Kafka message of
`--live-events` events (default 500) into the window's newest minute every `--live-interval`
seconds (default 0.25, the worker's fastest flush), through the same builder and insert: the
endpoint takes 2,000 events/s, the newest bucket keeps changing, and the engine's inserts and
merges share the machine with the calls, as under `vitals up`. The process CPU column
includes that writer. The series cache (query_api/endpoint_metrics/series_cache.py) keeps the
unchanged buckets;
the `cold series` case empties it before each call, which is what the first call for an
endpoint costs (every bucket read, from its compacted row where one is current).

    python -m bench.endpoint_metrics [--events 10000000] [--calls 50] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from pipeline.cli.gc_tuning import freeze_startup_heap
from pipeline.core.clock import row_version
from pipeline.core.settings import Settings
from pipeline.ingest import compaction
from pipeline.ingest.rows.requests import SinkBatch
from pipeline.storage import keys
from pipeline.storage.clickhouse import AsyncStore, migrate
from pipeline.storage.native import NativeBlock
from query_api.app import create_app
from query_api.auth import Authenticator
from query_api.context import ApiContext

EP = 7
PER_MESSAGE = 500
MESSAGES_PER_INSERT = 100
WORKERS = 12
WARMUP = 10


def _events(n: int, t0_ms: int, span_ms: int, total: int, rng: random.Random, first: int
            ) -> list[tuple[int, dict[str, Any]]]:
    """`n` events from global index `first`, evenly spread: event i at t0 + i·span/total."""
    out = []
    for k in range(n):
        i = first + k
        lat = rng.lognormvariate(5.5, 0.7)
        status = 503 if i % 41 == 0 else 404 if i % 53 == 0 else 200
        out.append((k, {
            "tenant": "bench", "endpoint_id": EP, "endpoint": "bench-llm",
            "autogroup_id": 100 + i % 4, "worker_id": i % WORKERS,
            "ts": t0_ms + i * span_ms // total, "status": status,
            "error_kind": "timeout" if i % 67 == 0 else "", "latency_ms": lat,
            "queue_ms": lat * 0.05, "work_units": 1.0, "tokens_in": 50, "tokens_out": 200,
            "cold_start": i % 1000 == 0, "cold_start_ms": 8000.0 if i % 1000 == 0 else 0.0,
            "gpu_seconds": lat / 1000, "bytes_out": 2048}))
    return out


def _row_count(cols: list[list[Any]] | NativeBlock) -> int:
    return cols.rows if isinstance(cols, NativeBlock) else len(cols[0])


async def load(store: AsyncStore, events: int, t0: int, per_message: int) -> dict[str, int]:
    rng = random.Random(1)
    span_ms = 86400 * 1000
    messages = math.ceil(events / per_message)
    rows: dict[str, int] = {}
    started = time.perf_counter()
    for first_msg in range(0, messages, MESSAGES_PER_INSERT):
        batch = SinkBatch()
        for m in range(first_msg, min(messages, first_msg + MESSAGES_PER_INSERT)):
            first = m * per_message
            n = min(per_message, events - first)
            batch.add_requests(0, m, _events(n, t0 * 1000, span_ms, events, rng, first))
        for table, names, cols in batch.tables():
            await store.insert(table, cols, names)
            rows[table] = rows.get(table, 0) + _row_count(cols)
        done = min(events, (first_msg + MESSAGES_PER_INSERT) * per_message)
        if first_msg % (MESSAGES_PER_INSERT * 10) == 0:
            print(f"  loaded {done:,} events ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    hb = SinkBatch()
    for t in range(t0, t0 + 86400, 10):
        hb.add_heartbeats(0, t, [(w, {
            "tenant": "bench", "endpoint_id": EP, "endpoint": "bench-llm",
            "autogroup_id": 100 + w % 4, "id": w, "ts": t * 1000 + w * 37,
            "loadtime": 0.0, "cur_load": 1.0, "new_load": 0.0, "rej_load": 0.0,
            "max_perf": 10.0, "cur_perf": 5.0,
            "cur_capacity": 1.0, "max_capacity": 2.0, "num_requests_working": 1,
            "num_requests_recieved": 10, "error_msg": "",
            "gpu_util": 40.0 + (t // 60 + w) % 50, "gpu_mem_util": 60.0, "cpu_util": 20.0})
            for w in range(WORKERS) if not (w == WORKERS - 1 and (t // 3600) % 3 == 0)])
    for table, names, cols in hb.tables():
        await store.insert(table, cols, names)
        rows[table] = rows.get(table, 0) + _row_count(cols)
    print(f"  load took {time.perf_counter() - started:.0f} s", flush=True)
    return rows


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[max(1, math.ceil(q * len(s))) - 1]


class Live:
    """Writes one message of `events` request events into the minute [now − 60, now) per
    `step()`, at the next Kafka offset of partition 1 (apart from the loaded data, partition 0),
    from an offset unique to the run (a rerun on the same data dir repeats no key)."""

    def __init__(self, store: AsyncStore, now: float, events: int) -> None:
        self.store, self.now, self.events = store, now, events
        self.first = self.offset = time.time_ns() // 1000
        self.rng = random.Random(2)

    async def run(self, interval: float) -> None:
        while True:
            started = time.perf_counter()
            await self.step()
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))

    async def step(self) -> None:
        if self.events <= 0:
            return
        t0_ms = int(self.now - 60) * 1000
        batch = SinkBatch()
        batch.add_requests(1, self.offset, _events(self.events, t0_ms, 59_000, self.events,
                                                   self.rng, 0))
        self.offset += 1
        for table, names, cols in batch.tables():
            await self.store.insert(table, cols, names)


async def timed(client: httpx.AsyncClient, url: str, params: dict[str, str], calls: int,
                headers: dict[str, str], before: Any = None, body: dict[str, Any] | None = None
                ) -> tuple[list[float], list[float], int]:
    """Wall-clock ms and process CPU ms (Python + the embedded engine's threads) per call, after
    WARMUP calls: the first few calls of a process cost up to 2-3x (the engine's mark and
    uncompressed caches, allocator growth, memoised timestamps). With `body`, a POST of that
    JSON body."""

    async def call() -> httpx.Response:
        if body is not None:
            return await client.post(url, json=body, headers=headers)
        return await client.get(url, params=params, headers=headers)

    for _ in range(WARMUP):
        r = await call()
        assert r.status_code == 200, r.text
    out, cpu = [], []
    for _ in range(calls):
        if before is not None:
            await before()
        t, c = time.perf_counter(), time.process_time()
        r = await call()
        out.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
        assert r.status_code == 200
    return out, cpu, len(r.content)


def bench_app(store: AsyncStore, settings: Settings, clock: Callable[[], float], *,
              cached: bool) -> Any:
    """The API app over `store`: with `cached`, the response cache and the shared reads at
    their defaults (`VITALS_METRICS_CACHE_S`, `VITALS_READ_CACHE_MS`), else both off (every
    call computes)."""
    defaults = Settings()
    return create_app(ApiContext(
        settings=settings.with_(metrics_cache_s=defaults.metrics_cache_s if cached else 0,
                                read_cache_ms=defaults.read_cache_ms if cached else 0),
        store=store, auth=Authenticator(store), clock=clock))


def bench_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")


async def polled(store: AsyncStore, settings: Settings, now: float, headers: dict[str, str],
                 seconds: float, interval: float) -> tuple[str, list[float], list[float], int]:
    """The 24 h / 1m document as a dashboard polling it meets it with the defaults: the
    response cache (its lifetime, `VITALS_METRICS_CACHE_S`, and the recomputation ahead of
    expiry in the background) and the shared reads, a clock that moves with the wall clock
    (so documents expire and are recomputed during the case), one call every `interval`
    seconds for `seconds`. Every call is counted: the ones that wait for a recomputation and
    the ones that share the event loop with one."""
    start = time.monotonic()
    app = bench_app(store, settings, lambda: now + (time.monotonic() - start), cached=True)
    calls = max(1, int(seconds / interval))
    async with bench_client(app) as client:
        ms, cpu, size = await timed(client, f"/v2/endpoints/{EP}/metrics",
                                    {"timeframe": "24h", "granularity": "1m"}, calls, headers,
                                    lambda: asyncio.sleep(interval))
    computed = app.state.endpoint_metrics.computations
    return (f"polled, defaults ({computed} computed)", ms, cpu, size)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--no-compact", action="store_true",
                    help="empty the compacted rollups and measure the fallback path")
    ap.add_argument("--per-message", type=int, default=PER_MESSAGE,
                    help="events per Kafka message (the producer's default batch is 500)")
    ap.add_argument("--live-events", type=int, default=PER_MESSAGE,
                    help="events per live message into the newest minute (0: no live ingest)")
    ap.add_argument("--live-interval", type=float, default=0.25,
                    help="seconds between live messages")
    ap.add_argument("--poll-seconds", type=float, default=15.0,
                    help="length of the polled case (defaults, moving clock; 0: skip it)")
    ap.add_argument("--poll-interval", type=float, default=0.05,
                    help="seconds between the polled case's calls")
    args = ap.parse_args()
    data = args.data_dir or Path(tempfile.mkdtemp(prefix="vitals-bench-metrics-"))
    settings = Settings(clickhouse_dsn=f"chdb://{data}", clickhouse_database="bench",
                        metrics_cache_s=0, metrics_rate_limit=10**9,
                        metrics_max_range=(("1m", 86400), ("5m", 86400), ("15m", 7 * 86400),
                                           ("1h", 30 * 86400)))
    store = AsyncStore.open(settings.dsn, settings.clickhouse_database)
    await store.call(lambda s: migrate(s))
    now = float(int(time.time()) // 60 * 60)
    t0 = int(now) - 86400
    existing = await store.rows("SELECT sum(requests) FROM bench.requests_1h FINAL "
                               "WHERE src_partition = 0")
    if int(existing[0][0] or 0) != args.events:
        print(f"loading {args.events:,} request events into {data} ...", flush=True)
        rows = await load(store, args.events, t0, args.per_message)
        print("  rows inserted:", rows)
    else:
        last = await store.rows("SELECT toUnixTimestamp(max(bucket)) FROM bench.requests_1m")
        now = float(last[0][0]) + 60
    if args.no_compact:
        for merged in compaction.MERGED.values():
            await store.command(f"TRUNCATE TABLE IF EXISTS bench.{merged}")
    else:
        started = time.perf_counter()
        for table in ("requests_1m", "requests_1h"):
            n = await store.call(lambda s, t=table: compaction.compact(  # type: ignore[misc]
                s, t, int(now) - 40 * 86400, int(now) + 3600, row_version(time.time())))
            print(f"compacted {n} {table} buckets ({time.perf_counter() - started:.1f} s; "
                  f"the worker does this every VITALS_COMPACT_INTERVAL_S)")
    key = (await store.call(lambda s: keys.create_key(s, "bench", "reader"))).key
    headers = {"Authorization": f"Bearer {key}"}
    parts = await store.rows("SELECT table, count() FROM system.parts WHERE database = 'bench' "
                             "AND active GROUP BY table ORDER BY table")
    print("active parts:", dict(parts))
    results = []
    if args.live_events:
        # Live messages go into a minute of their own, after the newest one stored (a later run
        # starts after this run's live minute): the window moves on by that minute.
        now += 60
    live = Live(store, now, args.live_events)
    writer = asyncio.create_task(live.run(args.live_interval)) if args.live_events else None
    freeze_startup_heap()  # as `vitals up` / `vitals api` do once started
    for cached in (False, True):
        # off: every call computes; on: the endpoint-metrics document kept and the shared
        # reads used, both at their defaults
        app = bench_app(store, settings, lambda: now, cached=cached)
        async with bench_client(app) as client:
            url = f"/v2/endpoints/{EP}/metrics"
            cases = [("json, all sections", {"timeframe": "24h", "granularity": "1m"}),
                     ("csv, all sections", {"timeframe": "24h", "granularity": "1m",
                                            "format": "csv"}),
                     ("prometheus", {"timeframe": "24h", "granularity": "1m",
                                     "format": "prometheus"}),
                     ("json, performance only", {"timeframe": "24h", "granularity": "1m",
                                                 "metrics": "performance"})]
            if cached:
                cases = cases[:1]
            for label, params in cases:
                ms, cpu, size = await timed(client, url, params, args.calls, headers)
                results.append((label + (" (cached)" if cached else ""), ms, cpu, size))
            if not cached:
                async def cold(state: Any = app.state) -> None:
                    state.endpoint_metrics.series.clear()

                ms, cpu, size = await timed(client, url, cases[0][1], args.calls, headers, cold)
                results.append(("json, all sections, cold series", ms, cpu, size))
            # the Vast-style stats route over the same events: current mode (the stats window
            # before `now`) and a 10-minute timeseries at step 1
            for label, body in (("stats, current", {"id": EP}),
                                ("stats, 10 min series", {"id": EP, "metric_name": "reqrate",
                                                          "t1": int(now) - 600,
                                                          "t2": int(now)})):
                ms, cpu, size = await timed(client, "/get_endpoint_stats/", {}, args.calls,
                                            headers, body=body)
                results.append((label + (" (shared reads)" if cached else ""), ms, cpu,
                                size))
    if args.poll_seconds > 0:
        results.append(await polled(store, settings, now, headers, args.poll_seconds,
                                    args.poll_interval))
    if writer is not None:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    check = (await store.rows(f"SELECT sum(requests) FROM bench.requests_1m FINAL WHERE "
                              f"endpoint_id = {EP}"))[0][0]
    print(f"\nevents stored (sum of 1m rollup): {check:,}, of which "
          f"{live.offset - live.first} live messages of {args.live_events} events written "
          f"every {args.live_interval:g} s during the calls; calls per case: {args.calls} "
          f"after {WARMUP} warm-up calls")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'case':36} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'cpu p50':>8} "
          f"{'cpu p99':>8} {'bytes':>10}")
    for label, ms, cpu, size in results:
        print(f"{label:36} {statistics.median(ms):8.1f} {_pct(ms, 0.99):8.1f} "
              f"{max(ms):8.1f} {statistics.median(cpu):8.1f} {_pct(cpu, 0.99):8.1f} "
              f"{size:10,}")
    store.close()


if __name__ == "__main__":
    asyncio.run(main())
