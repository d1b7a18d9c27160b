"""Render the figures of one bench.e2e run as markdown and append them to bench/results.md."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

from bench.procstat import CpuDelta, machine_info

__all__ = ["TARGET_EVENTS_PER_S", "TARGET_P99_S", "record", "render"]

TARGET_EVENTS_PER_S = 150_000
TARGET_P99_S = 2.0

HEADER = """\
# Benchmark results

Appended by `python -m bench.e2e` (one section per run; newest last). Every figure comes from one
run on one machine; the broker, the worker and the producers share its cores.

Figures:

- **preload**: N request events published by `bench.loadgen preload` (producer SDK, envelopes of
  500 events keyed by endpoint id) in a separate process that has exited before anything is timed.
- **ceiling: consume**: a raw `AIOKafkaConsumer` fetching the same topic, no decoding (events/s).
- **ceiling: consume + decode** (*the ceiling*): the same plus the worker's decoding per message
  (JSON parse + schema validation: `pipeline.ingest.decode.decode_structs`, `decode_envelope` for a
  message it declines; runs before 2026-11-23 17:00 used `decode_envelope` alone, which builds
  dicts and is slower); no faust, no ClickHouse. Own process.
- **consume + decode + aggregate**: the same plus `Sink.build` (the rows,
  pipeline/ingest/rows/requests.py)
  and `SinkBatch.tables()` (the Native block): the worker's pure CPU work.
- **e2e**: N / seconds from calling `Runtime(settings, api=False).start()` (embedded chdb, one
  faust worker, fresh consumer group and database) to the first poll (every 0.25 s) of
  `SELECT sum(requests) FROM <db>.requests_1s FINAL` that returns N. Includes worker start-up and
  group join (*start s*). **e2e / ceiling** is its ratio to the ceiling.
- **peak RSS**: the largest resident set of the bench process (the worker and its embedded
  ClickHouse engine, sampled at every poll) during the run; from 2026-12-02.
- **steady**: events/s between the first poll that saw rows and the last poll (excludes start-up).
- **inserts, mean insert ms, insert busy**: ClickHouse insert calls of the sink (one per table per
  flush), their mean duration and the share of the e2e wall time spent waiting on them.
- **cores**: CPU seconds / wall seconds during the e2e run, per thread of the worker process
  (Python threads labelled; chdb's own threads by OS name), the broker JVM, and everything else on
  the machine ("other processes": load that is not ours and that disturbs the figure).
- **latency**: a producer process paces load at *rate* events/s (default half the e2e rate of the
  same batch setting) and sends a probe (unique endpoint id, 1-event envelope after the SDK's
  50 ms linger) every 0.1 s; the worker process polls requests_raw every 0.05 s.
  Latency = first poll (start time) that sees the probe − probe's `send()` call time; an upper
  bound with 50 ms resolution. *drain s*: producer finished → every event counted.
- **targets** (product issue): e2e >= 150,000 events/s through one worker; publish-to-visible
  p99 < 2 s at half that rate (75,000 events/s).
"""


def _git_rev(repo: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                              check=False).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{rev} (+ uncommitted changes)" if dirty else rev


def _n(x: float | None, unit: str = "") -> str:
    if x is None:
        return "n/a"
    return f"{x:,.0f}{unit}" if abs(x) >= 100 else f"{x:.2f}{unit}"


def _cores(cpu: CpuDelta | None) -> str:
    if cpu is None:
        return "n/a"
    return cpu.summary().removeprefix("cores used: ")


def render(out: dict[str, Any], command: str) -> str:
    repo = Path(__file__).resolve().parent.parent
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    pre, ceil = out["preload"], out["ceiling"]
    ceiling = ceil["decode"]["events_per_s"]
    lines = [
        f"## {now} · rev {_git_rev(repo)}",
        "",
        f"- command: `{command}`",
        f"- machine: {machine_info()}",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| preload | {pre['events']:,} events in {pre['messages']:,} envelopes, "
        f"{pre['seconds']:.1f} s ({_n(pre['events_per_s'])} events/s, SDK with validation) |",
        f"| ceiling: consume | {_n(ceil['consume']['events_per_s'])} events/s |",
        f"| **ceiling: consume + decode** | **{_n(ceiling)} events/s** |",
        f"| consume + decode + aggregate | {_n(ceil['aggregate']['events_per_s'])} events/s |",
        "",
        "| batch msgs:s | e2e events/s | e2e / ceiling | steady events/s | start s | total s "
        "| inserts | mean insert ms | insert busy | dead letters | cores | peak RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in out["throughput"]:
        mean_ms = r.insert_s / r.inserts * 1000 if r.inserts else None
        busy = r.insert_s / r.total_s if r.total_s else 0
        flag = " (TIMED OUT: {r.visible:,} of {r.events:,})" if r.timed_out else ""
        lines.append(
            f"| {r.config} | **{_n(r.events_per_s)}**{flag} | {r.events_per_s / ceiling:.2f} | "
            f"{_n(r.steady_events_per_s)} | {r.start_s:.2f} | {r.total_s:.2f} | {r.inserts} | "
            f"{_n(mean_ms)} | {busy:.0%} | {r.dead_letters} | {_cores(r.cpu)} | "
            f"{r.rss_peak_mib:,.0f} |")
    if out["latency"]:
        lines += [
            "",
            "| batch msgs:s | rate asked | rate sent | probes | p50 s | p99 s | max s | missing "
            "| drain s | cores |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for lat in out["latency"]:
            lines.append(
                f"| {lat.config} | {_n(lat.rate)} | {_n(lat.sent_rate)} | {lat.probes} | "
                f"{_n(lat.pct(0.5))} | **{_n(lat.pct(0.99))}** | {_n(lat.pct(1.0))} | "
                f"{lat.missing} | {lat.drain_s:.2f} | {_cores(lat.cpu)} |")
    if "profile" in out:
        res, path = out["profile"]
        lines += ["", f"Profiled run ({res.config}, not in the table): "
                      f"{_n(res.events_per_s)} events/s under the profiler; report in `{path}`."]
    lines += ["", *_verdict(out), ""]
    return "\n".join(lines)


def _verdict(out: dict[str, Any]) -> list[str]:
    lines = []
    best = max(out["throughput"], key=lambda r: r.events_per_s)
    ok = best.events_per_s >= TARGET_EVENTS_PER_S
    lines.append(f"- target e2e >= {TARGET_EVENTS_PER_S:,} events/s: "
                 f"{'MET' if ok else 'NOT MET'} (best {_n(best.events_per_s)} events/s with "
                 f"batch {best.config}, {best.events_per_s / TARGET_EVENTS_PER_S:.0%} of target)")
    for lat in out["latency"]:
        p99 = lat.pct(0.99)
        # What the load generator achieved counts, not what it was asked for.
        at_target = lat.sent_rate >= 0.98 * TARGET_EVENTS_PER_S / 2
        fast = p99 is not None and p99 < TARGET_P99_S and lat.missing == 0
        where = ("at the target's half rate" if at_target else
                 f"only at {_n(lat.sent_rate)} events/s sent, below the target's "
                 f"{TARGET_EVENTS_PER_S // 2:,} events/s")
        verdict = ("MET" if fast and at_target else
                   "NOT MET" if not fast else "NOT DEMONSTRATED")
        lines.append(f"- target p99 < {TARGET_P99_S:g} s ({lat.config}): {verdict}: "
                     f"p99 {_n(p99, ' s')} {where}")
    return lines


def record(path: Path, text: str) -> None:
    if not path.exists():
        path.write_text(HEADER)
    with path.open("a") as fh:
        fh.write("\n" + text)
