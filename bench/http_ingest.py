"""HTTP ingest benchmark: ClearML `events.add_batch` → Kafka → worker → embedded ClickHouse.

A team importing a training run's history: N scalar events (default 500,000) stamped 72 days
ago, posted as JSON lines in batches (default 10,000 events) by C concurrent clients (default 4)
to a `vitals up` process (worker + API + embedded ClickHouse) on a private Kafka broker. Records:

- **accepted rate**: N / (first request sent → last `200` answer), events/s; every answer must
  report `added` = its batch and `errors` = 0;
- **readable after**: from the last answer until `events.get_task_events` reports `total` = N
  (polled every 0.1 s): how long after the import an analyst sees all of it; and N / (first
  request → all readable), the import's rate end to end.

The clients run in this process, the server in its own (`vitals up`), as in a deployment; the
request bodies are built before the clock starts.

Usage (from the repo root)::

    python -m bench.http_ingest                       # 500,000 events, 4 clients, 10,000/batch
    python -m bench.http_ingest --events 100000       # quicker
    python -m bench.http_ingest --tree /tmp/base      # server from another checkout (A/B)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from pipeline.local.kafka import LocalKafka

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
DAY_S = 86_400
VARIANTS = 10


def bodies(n: int, batch: int, start_ms: int, task: str) -> list[bytes]:
    """JSON-lines bodies of `n` scalar events: iterations × VARIANTS, one iteration a second."""
    out: list[bytes] = []
    lines: list[bytes] = []
    for k in range(n):
        i, v = divmod(k, VARIANTS)
        lines.append(orjson.dumps({
            "type": "training_stats_scalar", "task": task, "iter": i, "metric": "loss",
            "variant": f"v{v}", "value": 1.0 / (i + 1) + v, "timestamp": start_ms + i * 1000,
            "worker": "gpu-1"}))
        if len(lines) == batch:
            out.append(b"\n".join(lines))
            lines = []
    if lines:
        out.append(b"\n".join(lines))
    return out


async def post_all(url: str, key: str, batches: list[bytes], clients: int) -> float:
    """Post every batch with `clients` concurrent clients; return the seconds it took."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json-lines"}

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            while not queue.empty():
                body = queue.get_nowait()
                r = await http.post("/events.add_batch", content=body, headers=headers)
                doc = r.json()
                lines = body.count(b"\n") + 1
                if r.status_code != 200 or doc["data"]["added"] != lines or doc["data"]["errors"]:
                    raise RuntimeError(f"add_batch answered {r.status_code}: {r.text[:500]}")

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started


async def readable_after(url: str, key: str, task: str, n: int, timeout: float = 120
                         ) -> tuple[float | None, int]:
    """(seconds until `total` = n, or None if not within `timeout`; the last `total` seen)."""
    started = time.perf_counter()
    total = 0
    async with httpx.AsyncClient(base_url=url, timeout=60,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        while time.perf_counter() - started < timeout:
            r = await http.post("/events.get_task_events", json={"task": task, "batch_size": 1})
            if r.status_code == 200:
                total = r.json()["data"]["total"]
                if total == n:
                    return time.perf_counter() - started, total
            await asyncio.sleep(0.1)
    return None, total


def start_server(data_dir: Path, bootstrap: str, tree: Path
                 ) -> tuple[subprocess.Popen[bytes], str, str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP": bootstrap, "VITALS_DATA_DIR": str(data_dir),
           "VITALS_API_PORT": "0", "VITALS_STATSD_PORT": "off", "PYTHONPATH": str(tree)}
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c",
                             "from pipeline.cli.main import main; raise SystemExit(main())", "up"],
                            env=env, cwd=tree, stdout=log, stderr=subprocess.STDOUT)
    url_file, key_file = data_dir / "api.url", data_dir / "admin.key"
    deadline = time.monotonic() + 180
    while not (url_file.exists() and key_file.exists()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"vitals up did not start; see {data_dir / 'server.log'}")
        time.sleep(0.2)
    while True:  # api.url is written when the API listens
        try:
            url = url_file.read_text().strip()
            httpx.get(f"{url}/healthz", timeout=2).raise_for_status()
            return proc, url, key_file.read_text().strip()
        except (httpx.HTTPError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


async def run(n: int, batch: int, clients: int, tree: Path, age_days: float
              ) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="vitals-bench-http-"))
    kafka = LocalKafka(tmp / "broker", cache_dir=Path.home() / ".cache" / "vitals",
                       progress=lambda _m: None)
    info = kafka.start(timeout=120)
    proc = None
    try:
        (tmp / "vitals").mkdir()
        proc, url, key = start_server(tmp / "vitals", info.bootstrap, tree)
        task = "imported-run"
        start_ms = int((time.time() - age_days * DAY_S) * 1000)
        payloads = bodies(n, batch, start_ms, task)
        seconds = await post_all(url, key, payloads, clients)
        print(f"accepted {n:,} events in {seconds:.2f} s = {n / seconds:,.0f} events/s",
              flush=True)
        visible, total = await readable_after(url, key, task, n)
        return {"events": n, "batch": batch, "clients": clients, "seconds": seconds,
                "rate": n / seconds, "readable_after_s": visible, "readable": total,
                "load": os.getloadavg()[0], "age_days": age_days}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
        kafka.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--events", type=int, default=500_000)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--tree", type=Path, default=REPO,
                   help="run the server from this checkout (A/B against another revision, e.g. "
                        "a `git worktree`); default: this one")
    p.add_argument("--age-days", type=float, default=72,
                   help="how old the imported run is (default 72 days)")
    a = p.parse_args(argv)
    r = asyncio.run(run(a.events, a.batch, a.clients, a.tree.resolve(), a.age_days))
    after = r["readable_after_s"]
    readable = (f"all readable {after:.2f} s after the last answer, "
                f"{r['events'] / (r['seconds'] + after):,.0f} events/s from the first request "
                f"to all readable" if after is not None else
                f"NOT all readable: {r['readable']:,} of {r['events']:,} after 120 s")
    print(f"HTTP ingest (events.add_batch): {r['events']:,} scalars {r['age_days']:g} days old, "
          f"{r['clients']} clients, {r['batch']:,}-event batches: accepted in "
          f"{r['seconds']:.2f} s = {r['rate']:,.0f} events/s; {readable} "
          f"(load avg {r['load']:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
