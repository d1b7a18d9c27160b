"""Read benchmark of the task-events API on the embedded ClickHouse.

Loads, with the pipeline's own pure builder (`pipeline.ingest.rows.task_events.add_task_events`) and
`store.insert` (no Kafka: this measures reads):
- task `hist`: N scalar points of one metric/variant (iterations 0..N-1, one per 10 ms);
- task `log`: N log lines.
Then, through the real query API app (in-process ASGI, httpx), times:
1. `scalar_metrics_iter_histogram` of `hist` down to 2,000 samples (median of --repeat runs);
2. `get_task_events` scrolling every event of `log`, then of `hist` (batch_size --batch);
3. `download_task_log` of `log` as text (default line format), streamed.

Usage (from the repo root)::

    python -m bench.task_events              # N = 1,000,000
    python -m bench.task_events --n 100000   # quicker
    python -m bench.task_events --dir /tmp/te-bench   # load once, rerun the reads later
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from pipeline.core.settings import Settings
from pipeline.ingest.rows.requests import SinkBatch
from pipeline.ingest.rows.task_events import add_task_events
from pipeline.storage import keys
from pipeline.storage.clickhouse import AsyncStore, migrate
from query_api.app import create_app
from query_api.auth import Authenticator
from query_api.context import ApiContext

__all__ = ["main"]

CHUNK = 100_000


async def load(store: AsyncStore, n: int, base_ms: int) -> None:
    for kind in ("hist", "log"):
        for start in range(0, n, CHUNK):
            batch = SinkBatch()
            events: list[tuple[int, dict[str, Any]]] = []
            for i in range(start, min(n, start + CHUNK)):
                ts = base_ms + i * 10
                if kind == "hist":
                    e = {"tenant": "bench", "task": "hist", "type": "training_stats_scalar",
                         "timestamp": ts, "iter": i, "metric": "loss", "variant": "train",
                         "value": float((i * 7919) % 1000) / 10, "worker": "w"}
                else:
                    e = {"tenant": "bench", "task": "log", "type": "log", "timestamp": ts,
                         "level": "info", "worker": "worker-1",
                         "msg": f"step {i}: loss={(i * 7919) % 1000 / 10:.1f} lr=0.001"}
                events.append((i - start, e))
            add_task_events(batch, 0, start // CHUNK + (0 if kind == "hist" else 1000), events)
            for table, names, columns in batch.tables():
                await store.insert(table, columns, names)
    await store.command(f"OPTIMIZE TABLE {store.database}.task_metric_events FINAL")
    await store.command(f"OPTIMIZE TABLE {store.database}.task_log_events FINAL")


async def run(n: int, repeat: int, batch: int, data_dir: Path | None = None
              ) -> dict[str, float]:
    reuse = data_dir is not None and (data_dir / "ch").exists()
    tmp = data_dir or Path(tempfile.mkdtemp(prefix="vitals-bench-te-"))
    settings = Settings(clickhouse_dsn=f"chdb://{tmp / 'ch'}", clickhouse_database="bench_te",
                        data_dir=tmp)
    store = AsyncStore.open(settings.dsn, settings.clickhouse_database)
    await store.call(lambda s: migrate(s))
    base_ms = (int(time.time()) - 86_400) * 1000
    t0 = time.perf_counter()
    if reuse:
        print(f"reusing the data loaded in {tmp}")
    else:
        await load(store, n, base_ms)
        print(f"loaded {n:,} scalars + {n:,} log lines in {time.perf_counter() - t0:.1f} s")
    key = (await store.call(lambda s: keys.create_key(s, "bench", "reader"))).key
    app = create_app(ApiContext(settings=settings, store=store, auth=Authenticator(store)))
    out: dict[str, float] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b",
                                 headers={"Authorization": f"Bearer {key}"},
                                 timeout=600) as http:
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            r = await http.post("/events.scalar_metrics_iter_histogram",
                                json={"task": "hist", "samples": 2000})
            times.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
        points = len(r.json()["data"]["loss"]["train"]["x"])
        out["histogram_ms"] = statistics.median(times) * 1000
        print(f"histogram: {n:,} points -> {points} samples, median {out['histogram_ms']:.0f} ms "
              f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, {repeat} runs)")
        for task in ("log", "hist"):
            t = time.perf_counter()
            total, sid = 0, None
            while True:
                body: dict[str, Any] = {"task": task, "batch_size": batch}
                if sid:
                    body["scroll_id"] = sid
                r = await http.post("/events.get_task_events", json=body)
                assert r.status_code == 200, r.text
                d = orjson.loads(r.content)["data"]
                if not d["events"]:
                    break
                total += d["returned"]
                sid = d["scroll_id"]
            elapsed = time.perf_counter() - t
            assert total == n, total
            out[f"scroll_{task}_eps"] = total / elapsed
            print(f"scroll ({task}): {total:,} events in {elapsed:.2f} s = "
                  f"{total / elapsed:,.0f} events/s (batch_size {batch})")
        t = time.perf_counter()
        lines = 0
        async with http.stream("POST", "/events.download_task_log",
                               json={"task": "log", "line_type": "text"}) as resp:
            assert resp.status_code == 200
            async for chunk in resp.aiter_bytes():
                lines += chunk.count(b"\n")
        elapsed = time.perf_counter() - t
        assert lines == n, lines
        out["download_lps"] = lines / elapsed
        print(f"download: {lines:,} lines in {elapsed:.2f} s = {lines / elapsed:,.0f} lines/s")
    store.close()
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--dir", type=Path, default=None,
                    help="keep the loaded data here and reuse it on later runs (same --n)")
    args = ap.parse_args(argv)
    asyncio.run(run(args.n, args.repeat, args.batch, args.dir))


if __name__ == "__main__":
    main()
