"""End-to-end benchmark of the `requests` path: Kafka → faust worker → embedded ClickHouse.

One run measures, side by side, on a private broker and a private embedded ClickHouse:

1. **ceiling** — a raw aiokafka consumer decoding the pre-produced envelopes with
   `decode_envelope` (no faust, no ClickHouse), in its own process (bench/ceiling.py);
2. **e2e throughput** — N request events are pre-produced (envelopes of 500, several endpoints) by
   a producer process that has exited before the worker starts; then `Runtime(api=False)` starts
   here and the clock runs until ``SELECT sum(requests) FROM <db>.requests_1s FINAL`` = N
   (polled every 0.25 s). One figure per `--batch MESSAGES:SECONDS` setting;
3. **publish-to-visible latency** — a producer process paces load at `--rate` (default: half the
   e2e rate) for `--latency-seconds`, with a probe event (unique endpoint id) every 0.1 s; this
   process polls requests_raw and records when each probe is first visible.

Usage (from the repo root)::

    python -m bench.e2e --quick                       # 100k events, 10 s latency phase
    python -m bench.e2e                               # 1M events, 30 s latency phase
    python -m bench.e2e --batch 200:0.25 --batch 1000:0.5 --profile cprofile

Figures are printed and appended to bench/results.md (unless --no-record).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import logging
import math
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.loadgen import PROBE_BASE, EventGen
from bench.procstat import CpuDelta, Snapshot
from bench.report import record, render
from pipeline.cli.gc_tuning import freeze_startup_heap
from pipeline.cli.runtime import Runtime
from pipeline.core.settings import Settings, TopicNames
from pipeline.ingest.topic_admin import ensure_topics
from pipeline.local.kafka import LocalKafka
from pipeline.sdk.producer import Producer

__all__ = ["BatchConfig", "main"]

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench.e2e")


@dataclass(frozen=True)
class BatchConfig:
    messages: int
    seconds: float

    @classmethod
    def parse(cls, text: str) -> BatchConfig:
        try:
            m, s = text.split(":")
            return cls(int(m), float(s))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--batch {text!r}: expected MESSAGES:SECONDS, e.g. 200:0.25") from None

    def __str__(self) -> str:
        return f"{self.messages}:{self.seconds:g}"


@dataclass
class Throughput:
    config: BatchConfig
    events: int
    visible: int = 0
    start_s: float = 0.0  # Runtime.start() (store open, migrate, faust start)
    total_s: float = 0.0  # Runtime.start() called → sum(requests) == N seen
    steady_s: float = 0.0  # first poll with rows → last poll
    steady_events: int = 0
    poll_ms_max: float = 0.0
    messages: int = 0
    inserts: int = 0
    insert_s: float = 0.0
    dead_letters: int = 0
    cpu: CpuDelta | None = None
    timed_out: bool = False
    rss_peak_mib: float = 0.0  # this process: the worker and its embedded ClickHouse

    @property
    def events_per_s(self) -> float:
        return self.visible / self.total_s if self.total_s else 0.0

    @property
    def steady_events_per_s(self) -> float:
        return self.steady_events / self.steady_s if self.steady_s else 0.0


@dataclass
class Latency:
    config: BatchConfig
    rate: float
    sent_rate: float = 0.0
    producer_max_behind_s: float = 0.0
    probes: int = 0
    latencies: list[float] = field(default_factory=list)
    missing: int = 0
    drain_s: float = 0.0  # producer done → every event visible
    poll_ms_max: float = 0.0
    cpu: CpuDelta | None = None

    def pct(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _settings(bootstrap: str, dsn: str, topics: TopicNames, cfg: BatchConfig) -> Settings:
    tag = uuid.uuid4().hex[:10]
    return Settings(kafka_bootstrap=bootstrap, clickhouse_dsn=dsn,
                    clickhouse_database=f"bench_{tag}", topics=topics,
                    consumer_group=f"bench-{tag}", api_port=0,
                    batch_max_messages=cfg.messages, batch_max_seconds=cfg.seconds)


async def _python(*args: str) -> dict[str, Any]:
    """Run ``python -m <args>`` from the repo root; return the JSON of its last stdout line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, cwd=REPO, stdout=subprocess.PIPE)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"python -m {' '.join(args)} exited with {proc.returncode}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def _sum_requests(rt: Runtime) -> int:
    assert rt.store is not None
    db = rt.settings.clickhouse_database
    rows = await rt.store.rows(f"SELECT sum(requests) FROM {db}.requests_1s FINAL")
    return int(rows[0][0] or 0)


async def _drop(rt: Runtime) -> None:
    """Drop the run's database so its background merges do not load the next run."""
    if rt.store is not None:
        await rt.store.command(f"DROP DATABASE IF EXISTS {rt.settings.clickhouse_database} SYNC")


async def _start(rt: Runtime, gc_tuning: bool) -> None:
    """Start the runtime; with `gc_tuning`, then tune the collector as the `vitals` entry
    point does once started (`freeze_startup_heap`), so the figures are the command's."""
    await rt.start()
    if gc_tuning:
        freeze_startup_heap()


async def throughput(bootstrap: str, dsn: str, topics: TopicNames, events: int,
                     cfg: BatchConfig, *, timeout: float, broker_pid: int, poll_s: float = 0.25,
                     profile: str | None = None, gc_tuning: bool = True
                     ) -> tuple[Throughput, str]:
    """Start a worker (fresh group and database) on the pre-produced topic; time until every
    event is counted in requests_1s. Returns the figures and, with `profile`, its report.
    `gc_tuning`: see `_start`."""
    s = _settings(bootstrap, dsn, topics, cfg)
    rt = Runtime(s, api=False)
    res = Throughput(cfg, events)
    prof_main = prof_ch = None
    pyi: Any = None
    if profile == "cprofile":
        prof_main, prof_ch = cProfile.Profile(), cProfile.Profile()
        prof_main.enable()
    elif profile == "pyinstrument":
        from pyinstrument import Profiler

        pyi = Profiler(interval=0.001, async_mode="disabled")
        pyi.start()
    names = {threading.get_native_id(): "main thread (event loop)"}
    before = Snapshot.take({"broker": broker_pid}, names)
    t0 = time.perf_counter()
    try:
        await _start(rt, gc_tuning)
        assert rt.store is not None
        names[await rt.store.call(lambda _s: threading.get_native_id())] = "clickhouse executor"
        if prof_ch is not None:  # cProfile hooks are per thread: enable on the chdb thread too
            await rt.store.call(lambda _s: prof_ch.enable())
        res.start_s = time.perf_counter() - t0
        first: tuple[float, int] | None = None
        while True:
            q0 = time.perf_counter()
            total = await _sum_requests(rt)
            now = time.perf_counter()
            res.poll_ms_max = max(res.poll_ms_max, (now - q0) * 1000)
            res.visible, res.total_s = total, now - t0
            res.rss_peak_mib = max(res.rss_peak_mib, _rss_mib())
            if total and first is None:
                first = (now, total)
            if total >= events:
                break
            if now - t0 > timeout:
                res.timed_out = True
                break
            await asyncio.sleep(max(0.0, poll_s - (time.perf_counter() - q0)))
        if first is not None:
            res.steady_s = time.perf_counter() - first[0]
            res.steady_events = res.visible - first[1]
        after = Snapshot.take({"broker": broker_pid}, names)
        res.cpu = before.delta(after)
        report = ""
        if prof_ch is not None and prof_main is not None:
            await rt.store.call(lambda _s: prof_ch.disable())
            prof_main.disable()
            report = _cprofile_report(prof_main, prof_ch)
        elif pyi is not None:
            pyi.stop()
            report = pyi.output_text(unicode=False, color=False, show_all=False)
        tel = rt.telemetry
        res.messages = int(tel.value("vitals_messages_consumed_total", topic=topics.requests))
        hist = tel._hists.get("vitals_insert_seconds", {}).get((("topic", "requests"),))
        if hist:
            res.inserts, res.insert_s = int(sum(hist[:-1])), hist[-1]
        db = s.clickhouse_database
        res.dead_letters = int((await rt.store.rows(
            f"SELECT count() FROM {db}.dead_letters"))[0][0])
        return res, report
    finally:
        await _drop(rt)
        await rt.stop()


def _rss_mib() -> float:
    """This process's resident set (VmRSS), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cprofile_report(main: cProfile.Profile, ch: cProfile.Profile, top: int = 30) -> str:
    out = io.StringIO()
    for title, prof in (("main thread (event loop: faust, decode, aggregation)", main),
                        ("clickhouse executor thread (clickhouse-connect + chdb)", ch)):
        out.write(f"==== {title}\n")
        st = pstats.Stats(prof, stream=out)
        st.sort_stats("tottime").print_stats(top)
        st.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


async def latency(bootstrap: str, dsn: str, prefix: str, cfg: BatchConfig, rate: float,
                  duration: float, *, broker_pid: int, probe_every: float = 0.1,
                  poll_s: float = 0.05, drain_timeout: float = 60.0,
                  gc_tuning: bool = True) -> Latency:
    """Paced load on fresh topics with probes; records when each probe is visible."""
    topics = TopicNames(prefix)
    s = _settings(bootstrap, dsn, topics, cfg)
    rt = Runtime(s, api=False)
    res = Latency(cfg, rate)
    try:
        await _start(rt, gc_tuning)
        assert rt.store is not None
        db = s.clickhouse_database
        seen_sql = (f"SELECT DISTINCT endpoint_id FROM {db}.requests_raw "
                    f"WHERE tenant = 'default' AND endpoint_id >= {PROBE_BASE - 1}")
        async with Producer(bootstrap, topics) as warm:  # wait until the worker is consuming
            await warm.send("requests", EventGen().event(time.time(), endpoint_id=PROBE_BASE - 1))
        deadline = time.monotonic() + 60
        while not await rt.store.rows(seen_sql):
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not consume a warm-up event within 60 s")
            await asyncio.sleep(0.1)
        seen: dict[int, float] = {}
        names = {threading.get_native_id(): "main thread (event loop)",
                 await rt.store.call(lambda _s: threading.get_native_id()): "clickhouse executor"}
        before = Snapshot.take({"broker": broker_pid}, names)
        producer = asyncio.create_task(_python(
            "bench.loadgen", "paced", "--bootstrap", bootstrap, "--prefix", prefix,
            "--rate", str(rate), "--duration", str(duration), "--probe-every", str(probe_every)))
        sent: dict[str, Any] | None = None
        done_at = 0.0
        while True:
            q0 = time.time()
            for (ep,) in await rt.store.rows(seen_sql):
                seen.setdefault(int(ep), q0)
            res.poll_ms_max = max(res.poll_ms_max, (time.time() - q0) * 1000)
            if sent is None and producer.done():
                sent, done_at = producer.result(), time.monotonic()
                res.cpu = before.delta(Snapshot.take({"broker": broker_pid}, names))
            if sent is not None and (all(ep in seen for ep, _ in sent["probes"])
                                     or time.monotonic() - done_at > drain_timeout):
                break
            await asyncio.sleep(max(0.0, poll_s - (time.time() - q0)))
        res.probes = len(sent["probes"])
        res.latencies = [seen[ep] - at for ep, at in sent["probes"] if ep in seen]
        res.missing = res.probes - len(res.latencies)
        res.sent_rate = sent["events_per_s"]
        res.producer_max_behind_s = sent["max_behind_s"]
        expected = sent["events"] + res.probes + 1
        while await _sum_requests(rt) < expected and time.monotonic() - done_at < drain_timeout:
            await asyncio.sleep(0.1)
        res.drain_s = time.monotonic() - done_at
        return res
    finally:
        await _drop(rt)
        await rt.stop()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="vitals-bench-"))
    kafka = LocalKafka(work / "kafka", cache_dir=Path.home() / ".cache" / "vitals",
                       progress=lambda m: log.info("%s", m))
    out: dict[str, Any] = {"throughput": [], "latency": []}
    try:
        info = await asyncio.to_thread(kafka.start)
        bootstrap, broker_pid = info.bootstrap, info.pid
        dsn = f"chdb://{work / 'clickhouse'}"
        prefix = f"bench{uuid.uuid4().hex[:8]}-"
        topics = TopicNames(prefix)
        await ensure_topics(bootstrap, [topics.requests], partitions=1)
        log.info("broker %s; pre-producing %d events to %s", bootstrap, args.events,
                 topics.requests)
        out["preload"] = await _python(
            "bench.loadgen", "preload", "--bootstrap", bootstrap, "--prefix", prefix,
            "--events", str(args.events), "--endpoints", str(args.endpoints))
        log.info("preload: %s", {k: v for k, v in out["preload"].items()})
        out["ceiling"] = await _python("bench.ceiling", "--bootstrap", bootstrap, "--topic",
                                       topics.requests, "--events", str(args.events))
        log.info("ceiling: %.0f events/s", out["ceiling"]["decode"]["events_per_s"])
        for cfg in args.batch:
            res, _ = await throughput(bootstrap, dsn, topics, args.events, cfg,
                                      timeout=args.timeout, broker_pid=broker_pid,
                                      gc_tuning=args.gc_tuning)
            log.info("e2e %s: %.0f events/s (%s)", cfg, res.events_per_s,
                     res.cpu.summary() if res.cpu else "")
            out["throughput"].append(res)
        if args.profile:
            cfg = args.batch[0]
            log.info("profiling one more e2e run (%s, %s)", cfg, args.profile)
            res, report = await throughput(bootstrap, dsn, topics, args.events, cfg,
                                           timeout=args.timeout, broker_pid=broker_pid,
                                           profile=args.profile, gc_tuning=args.gc_tuning)
            Path(args.profile_out).write_text(report)
            out["profile"] = (res, args.profile_out)
        if args.latency_seconds > 0:
            for i, cfg in enumerate(args.batch if args.latency_all else args.batch[:1]):
                rate = args.rate or out["throughput"][i].events_per_s / 2
                lat_prefix = f"benchlat{uuid.uuid4().hex[:8]}-"
                log.info("latency %s at %.0f events/s for %g s", cfg, rate, args.latency_seconds)
                out["latency"].append(await latency(bootstrap, dsn, lat_prefix, cfg, rate,
                                                    args.latency_seconds, broker_pid=broker_pid,
                                                    gc_tuning=args.gc_tuning))
        return out
    finally:
        await asyncio.to_thread(kafka.stop)
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    d = Settings()
    p = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000, help="events to pre-produce")
    p.add_argument("--endpoints", type=int, default=8, help="endpoint ids (message keys)")
    p.add_argument("--rate", type=float, default=None,
                   help="latency phase load, events/s (default: half the measured e2e rate)")
    p.add_argument("--latency-seconds", type=float, default=30.0,
                   help="length of the paced latency phase; 0 skips it")
    p.add_argument("--batch", type=BatchConfig.parse, action="append", default=None,
                   metavar="MESSAGES:SECONDS",
                   help="sink flush thresholds (batch_max_messages:batch_max_seconds); "
                        f"repeat to compare; default {d.batch_max_messages}:{d.batch_max_seconds}")
    p.add_argument("--latency-all", action="store_true",
                   help="run the latency phase for every --batch (default: the first only)")
    p.add_argument("--timeout", type=float, default=None,
                   help="give up on one e2e run after this many s (default max(120, N/5000))")
    p.add_argument("--profile", choices=("cprofile", "pyinstrument"), default=None,
                   help="one extra, profiled e2e run with the first --batch (not in the figures)")
    p.add_argument("--profile-out",
                   default=str(Path(tempfile.gettempdir()) / "vitals-e2e.prof.txt"))
    p.add_argument("--quick", action="store_true", help="smoke run: 100k events, 10 s latency")
    p.add_argument("--no-record", action="store_true", help="do not append to bench/results.md")
    p.add_argument("--no-gc-tuning", dest="gc_tuning", action="store_false",
                   help="leave the collector at CPython's defaults (the entry point's tuning, "
                        "pipeline/cli/gc_tuning.py, is applied by default once the worker "
                        "started)")
    args = p.parse_args(argv)
    if args.quick:
        args.events = 100_000 if "--events" not in (argv or sys.argv) else args.events
        args.latency_seconds = 10.0 if "--latency-seconds" not in (argv or sys.argv) \
            else args.latency_seconds
    args.batch = args.batch or [BatchConfig(d.batch_max_messages, d.batch_max_seconds)]
    args.timeout = args.timeout or max(120.0, args.events / 5000)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    out = asyncio.run(run(args))
    command = "python -m bench.e2e " + " ".join(sys.argv[1:] if argv is None else argv)
    text = render(out, command)
    print(text)
    if not args.no_record:
        record(REPO / "bench" / "results.md", text)
        print(f"appended to {REPO / 'bench' / 'results.md'}")


if __name__ == "__main__":
    main()
