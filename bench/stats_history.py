"""The stats API's `totreqs` (current mode) over a long history: the per-day cache
(query_api/vast/totals_store.py) against reading every 1h rollup row of the history with FINAL,
as every call did before.

Fills an embedded ClickHouse with `--rows-per-day` per-message 1h rollup rows for one endpoint
over `--days` days, written straight into `requests_1h` (its rows-written counters follow by
their view), one request each; ~80,000 rows a day is an endpoint taking 115 request events/s
in envelopes of 500 over four autogroups. Then times, in-process on the engine, the direct read
and `total_requests` with its cache: cold (the first call of a process) and warm while one new
message a call lands in the current day (what a polled endpoint under ingest meets). Both must
return the same total.

    python -m bench.stats_history [--days 30] [--rows-per-day 80000] [--calls 30]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import tempfile
import time
from pathlib import Path

from pipeline.storage.clickhouse import AsyncStore, migrate
from query_api.entities import Scope
from query_api.vast.totals_store import DAY, RequestTotals, total_requests

SCOPE = Scope("bench", 7)


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[max(1, math.ceil(q * len(s))) - 1]


async def fill(store: AsyncStore, days: int, per_day: int, today: int) -> int:
    """`per_day` rows a day, each one request of its own message (src_offset), the last day
    being `today`; returns the rows written."""
    first = today - (days - 1) * DAY
    step = max(1, DAY * 1000 // per_day)  # ms between rows
    for d in range(days):
        lo = first + d * DAY
        await store.command(
            f"INSERT INTO {store.database}.requests_1h (tenant, endpoint_id, bucket, "
            f"autogroup_id, src_partition, src_offset, requests) SELECT 'bench', 7, "
            f"toStartOfHour(toDateTime({lo} + intDiv(number * {step}, 1000), 'UTC')), "
            f"number % 4, 0, {d} * {per_day} + number, 1 FROM numbers({per_day})")
    return days * per_day


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--rows-per-day", type=int, default=80_000)
    ap.add_argument("--calls", type=int, default=30)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="vitals-bench-history-"))
    store = AsyncStore.open(f"chdb://{data}", "bench")
    await store.call(migrate)
    now = time.time()
    today = int(now) // DAY * DAY
    started = time.perf_counter()
    rows = await fill(store, args.days, args.rows_per_day, today)
    print(f"{rows:,} 1h rows over {args.days} days written in "
          f"{time.perf_counter() - started:.1f} s ({data})", flush=True)
    offset = rows

    async def land() -> None:
        """One more single-request message into the current hour."""
        nonlocal offset
        offset += 1
        await store.command(
            f"INSERT INTO bench.requests_1h (tenant, endpoint_id, bucket, autogroup_id, "
            f"src_partition, src_offset, requests) VALUES ('bench', 7, "
            f"toStartOfHour(toDateTime({int(now)}, 'UTC')), 0, 0, {offset}, 1)")

    async def before() -> int:
        """The read every call made before the per-day cache, as it was."""
        rows = await store.rows("SELECT sum(requests) FROM bench.requests_1h FINAL "
                                "WHERE tenant = 'bench' AND endpoint_id = 7")
        return int(rows[0][0])

    async def cached(totals: RequestTotals) -> int:
        return await total_requests(store, SCOPE, totals, before_day=None, now=now,
                                    retention_days=400)

    for _ in range(3):  # warm the engine's caches
        await before()
    warm, cold = RequestTotals(), RequestTotals()
    await cached(warm)
    results = []
    for label, read, totals in (("every 1h row, FINAL (before)", before, None),
                                ("per-day cache, cold", lambda: cached(cold), cold),
                                ("per-day cache, warm", lambda: cached(warm), None)):
        ms = []
        for _ in range(args.calls):
            await land()
            if totals is not None:
                totals.clear()  # a first call: every day read
            t = time.perf_counter()
            total = await read()
            ms.append((time.perf_counter() - t) * 1000)
            assert total == offset, (label, total, offset)  # every row is one request
        results.append((label, ms))
    print(f"totreqs over {args.days} days ({rows:,} rows + one new message per call), "
          f"{args.calls} calls each; every answer equal to the rows written")
    print(f"{'read':32} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, ms in results:
        print(f"{label:32} {statistics.median(ms):8.1f} {_pct(ms, 0.99):8.1f} {max(ms):8.1f}")
    store.close()


if __name__ == "__main__":
    asyncio.run(main())
