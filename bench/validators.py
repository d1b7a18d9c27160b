"""Why event validation has two paths: the speed of each on the same valid and invalid events.

The worker and the producer SDK judge events with the msgspec structs compiled from the
schemas (`schemas.fast`, through `pipeline.ingest.decode`) and fall back to the Python
validators (`schemas.validator`, `EventChecker`) for a message the fast path declines, to name
the reason of every bad event. This measures, per topic kind, on the same events:

- **worker, per envelope** of `--size` events (the producer's batch): the worker's way
  (`decode_structs` where the kind has a columnar decoder, then `decode_envelope`, exactly as
  `Sink.prepare` calls them), the fast path alone (`_decode_fast`: msgspec to dicts plus the
  time window) and the Python path alone (`orjson.loads` plus `EventChecker` per event: what
  `decode_envelope` does after the fast path declined);
- **producer, per event**: `check_encoded` (the SDK's check: fast path, then Python) against
  the Python path alone on the same bytes;
- **producer, encoding**: orjson (the SDK's encoder, `pipeline.sdk.event_encoder._encode`)
  against msgspec's JSON encoder (its fallback), on one envelope of `--size` events and on one
  event.

"valid": every event passes. "invalid": the same envelope with one event (the middle one)
given `v: 2`, which every schema refuses: the fast path declines the whole message and the
Python path names the event.

Figures are events per CPU second of the benchmark's thread (`time.thread_time_ns`), from the
median CPU time of a call, the calls of the paths compared alternating (A, B, A, B, ...): the
machine is shared, and CPU time, interleaving and the median are what other processes' load
disturbs least. The garbage collector is off while timing (collected before). The metrics kind
has no fast path, so its two worker columns run the same code: their ratio shows the noise.

Usage (from the repo root)::

    python -m bench.validators                # prints the tables, appends them to results.md
    python -m bench.validators --no-record --kinds requests
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import orjson

from bench.loadgen import EventGen
from bench.procstat import machine_info
from pipeline.ingest.decode import (
    EventChecker,
    _decode_fast,
    check_encoded,
    decode_envelope,
    decode_structs,
)
from schemas import SchemaViolation

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
MAX_FUTURE_MS = 300_000
MAX_AGE_MS = 30 * 86_400_000
KINDS = ("requests", "heartbeats", "jobs", "metrics")


def _events(kind: str, n: int, now_s: float) -> list[dict[str, Any]]:
    """`n` valid events of `kind`, event times within the last minute."""
    if kind == "requests":
        gen = EventGen(endpoints=8)
        return list(gen.spread(n, now_s - 60, n / 50))
    out: list[dict[str, Any]] = []
    for i in range(n):
        ts = round(now_s - 60 + 50 * i / n, 3)
        if kind == "heartbeats":
            out.append({"v": 1, "type": "heartbeat", "ts": ts, "tenant": "acme",
                        "endpoint_id": 1 + i % 8, "autogroup_id": 70, "id": i % 40,
                        "loadtime": 1.5, "cur_load": 3.0, "max_perf": 120.0,
                        "num_requests_working": 2, "num_requests_recieved": 5,
                        "error_msg": "", "gpu_util": 55.5})
        elif kind == "jobs":
            out.append({"v": 1, "type": "task", "ts": ts, "tenant": "acme", "user": "ann",
                        "task_id": f"t-{i}", "state": "queued", "cluster": "c1"}
                       if i % 2 else
                       {"v": 1, "type": "node", "ts": ts, "tenant": "acme", "user": "ann",
                        "cluster": "c1", "node_id": f"n-{i % 16}", "state": "up"})
        elif kind == "metrics":
            out.append({"v": 1, "type": "metric", "ts": ts, "tenant": "acme",
                        "name": f"queue.depth.{i % 8}", "kind": "g", "value": float(i % 100),
                        "tags": {"env": "prod"}})
        else:
            raise ValueError(f"no bench events for kind {kind!r}")
    return out


#: CPU time of this thread, not wall time: on a shared machine another process's load then
#: costs a call its cache, not its time slices. Every path measured runs on this thread.
_clock = time.thread_time_ns


def _rates(fns: dict[str, Callable[[], object]], events_per_call: int,
           seconds: float) -> dict[str, float]:
    """Events per CPU second of each function, from the median CPU time of its calls. The
    calls alternate between the functions (A, B, A, B, ...) for about `seconds` in all, so
    load from elsewhere falls on all of them alike, and the median drops the calls it hit."""
    cost = 0
    for fn in fns.values():  # calibrate: one round of calls
        t0 = _clock()
        fn()
        cost += _clock() - t0
    rounds = max(101, int(seconds * 1e9 / max(cost, 1)))
    spent: dict[str, list[int]] = {name: [] for name in fns}
    gc.collect()
    gc.disable()  # a collection lands in whichever call crosses the threshold
    try:
        for _ in range(rounds):
            for name, fn in fns.items():
                t0 = _clock()
                fn()
                spent[name].append(_clock() - t0)
    finally:
        gc.enable()
    return {name: events_per_call * 1e9 / max(statistics.median(ns), 1)
            for name, ns in spent.items()}


def _python_path(kind: str, value: bytes, now_ms: int) -> int:
    """`decode_envelope` after the fast path declined: parse, then the Python validators."""
    checker = EventChecker(kind, now_ms=now_ms, max_future_ms=MAX_FUTURE_MS,
                           max_age_ms=MAX_AGE_MS)
    good = 0
    for item in orjson.loads(value):
        try:
            checker(item)
        except SchemaViolation:
            continue
        good += 1
    return good


def _worker_way(kind: str, value: bytes, now_ms: int) -> int:
    """What `Sink.prepare` runs for one message."""
    limits = {"now_ms": now_ms, "max_future_ms": MAX_FUTURE_MS, "max_bytes": 1 << 30,
              "max_age_ms": MAX_AGE_MS}
    fast = decode_structs(value, kind, **limits)
    if fast is not None:
        return len(fast[0])
    return len(decode_envelope(value, kind, **limits).events)


def _sdk_python(kind: str, data: bytes, now_ms: int) -> bool:
    try:
        EventChecker(kind, now_ms=now_ms, max_future_ms=MAX_FUTURE_MS)(orjson.loads(data))
    except SchemaViolation:
        return False
    return True


def _sdk_way(kind: str, data: bytes, event: dict[str, Any], now_ms: int) -> bool:
    try:
        check_encoded(kind, data, event, now_ms=now_ms, max_future_ms=MAX_FUTURE_MS)
    except SchemaViolation:
        return False
    return True


def measure(kind: str, size: int, seconds: float) -> dict[str, Any]:
    now_s = time.time()
    now_ms = int(now_s * 1000)
    valid = _events(kind, size, now_s)
    invalid = [dict(e) for e in valid]
    invalid[size // 2]["v"] = 2
    envelopes = {"valid": orjson.dumps(valid), "invalid": orjson.dumps(invalid)}
    checker = EventChecker(kind, now_ms=now_ms, max_future_ms=MAX_FUTURE_MS,
                           max_age_ms=MAX_AGE_MS)
    row: dict[str, Any] = {"kind": kind}
    for case, value in envelopes.items():
        expected = size if case == "valid" else size - 1
        assert _worker_way(kind, value, now_ms) == expected
        assert _python_path(kind, value, now_ms) == expected
        fast_ok = _decode_fast(value, kind, checker) is not None
        columnar = decode_structs(value, kind, now_ms=now_ms, max_future_ms=MAX_FUTURE_MS,
                                  max_bytes=1 << 30, max_age_ms=MAX_AGE_MS) is not None
        row[f"{case} fast accepts"] = ("columnar" if columnar else "dicts") if fast_ok else "no"
        fns: dict[str, Callable[[], object]] = {
            f"worker {case}": lambda v=value: _worker_way(kind, v, now_ms),
            f"python {case}": lambda v=value: _python_path(kind, v, now_ms)}
        if case == "valid" and fast_ok:
            fns["fast dicts valid"] = lambda v=value: _decode_fast(v, kind, checker)
        row.update(_rates(fns, size, seconds))
    row.setdefault("fast dicts valid", None)
    for case, event in (("valid", valid[size // 2]), ("invalid", invalid[size // 2])):
        data = orjson.dumps(event)
        assert _sdk_way(kind, data, event, now_ms) is (case == "valid")
        assert _sdk_python(kind, data, now_ms) is (case == "valid")
        row.update(_rates({
            f"sdk {case}": lambda d=data, e=event: _sdk_way(kind, d, e, now_ms),
            f"sdk python {case}": lambda d=data: _sdk_python(kind, d, now_ms)},
            1, seconds))
    encode = msgspec.json.Encoder().encode
    one = valid[size // 2]
    row.update(_rates({"orjson envelope": lambda: orjson.dumps(valid),
                       "msgspec envelope": lambda: encode(valid)}, size, seconds))
    row.update(_rates({"orjson event": lambda: orjson.dumps(one),
                       "msgspec event": lambda: encode(one)}, 1, seconds))
    return row


def _n(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def _x(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or not b else f"{a / b:.2f}"


def tables(rows: list[dict[str, Any]], size: int) -> list[str]:
    out = [f"Worker, envelopes of {size} events (events per CPU second; the worker's way = "
           "`decode_structs`, then `decode_envelope`, as `Sink.prepare`):", "",
           "| kind | fast path takes | worker's way, valid | fast path alone (dicts), valid | "
           "Python path alone, valid | worker ÷ Python, valid | worker's way, 1 invalid | "
           "Python path alone, 1 invalid | worker ÷ Python, 1 invalid |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        out.append(
            f"| {r['kind']} | {r['valid fast accepts']} | {_n(r['worker valid'])} | "
            f"{_n(r['fast dicts valid'])} | {_n(r['python valid'])} | "
            f"{_x(r['worker valid'], r['python valid'])} | {_n(r['worker invalid'])} | "
            f"{_n(r['python invalid'])} | {_x(r['worker invalid'], r['python invalid'])} |")
    out += ["", "Producer SDK, one event per check (checks per CPU second; `check_encoded` "
            "against the Python path alone on the same bytes):", "",
            "| kind | check_encoded, valid | Python alone, valid | ratio | "
            "check_encoded, invalid | Python alone, invalid | ratio |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        out.append(
            f"| {r['kind']} | {_n(r['sdk valid'])} | {_n(r['sdk python valid'])} | "
            f"{_x(r['sdk valid'], r['sdk python valid'])} | {_n(r['sdk invalid'])} | "
            f"{_n(r['sdk python invalid'])} | {_x(r['sdk invalid'], r['sdk python invalid'])} |")
    out += ["", "Producer SDK, encoding (events per CPU second; orjson, the SDK's encoder, "
            "against msgspec, its fallback):", "",
            f"| kind | orjson, envelope of {size} | msgspec, envelope | ratio | "
            "orjson, one event | msgspec, one event | ratio |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        out.append(
            f"| {r['kind']} | {_n(r['orjson envelope'])} | {_n(r['msgspec envelope'])} | "
            f"{_x(r['orjson envelope'], r['msgspec envelope'])} | {_n(r['orjson event'])} | "
            f"{_n(r['msgspec event'])} | {_x(r['orjson event'], r['msgspec event'])} |")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.validators", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--size", type=int, default=500, help="events per envelope (default 500)")
    p.add_argument("--seconds", type=float, default=3.0,
                   help="CPU seconds per comparison (default 3)")
    p.add_argument("--no-record", action="store_true", help="print only")
    args = p.parse_args(argv)
    command = "python -m bench.validators " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = [measure(k, args.size, args.seconds) for k in args.kinds.split(",")]
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                         capture_output=True).stdout.strip()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    text = [f"## Validation paths — {when}, revision {rev}", "",
            f"`{command.strip()}` on {machine_info()}, load average {load}.", "",
            *tables(rows, args.size)]
    print("\n".join(text))
    if not args.no_record:
        with open(REPO / "bench" / "results.md", "a") as f:
            f.write("\n" + "\n".join(text) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
