"""Read load on the query API: N keep-alive clients, a route mix, a fixed duration.

``python -m bench.load --clients 50 --duration 20 --mix stats=1,series=1,metrics=1,healthz=1``
starts `vitals up --demo` in a fresh data dir (its own broker unless `KAFKA_BOOTSTRAP` is set,
demo traffic ingesting beside the API, as an operator runs it) and measures once the demo's
endpoint 1 answers stats; ``--url URL --key KEY`` targets a running API instead.

Each client is one HTTP/1.1 keep-alive connection cycling through the mix by its weights. By
default it sends its next request as soon as the previous answer is read (closed loop: the
figure is the most the API serves; by Little's law the mean latency is then clients ÷
requests/s). With `--rate R` the clients are paced (open loop, like pollers and dashboards):
R requests/s in all, each client at R ÷ clients, latency counted from when each request was
due. Each run's clients send for `--settle` seconds (default 2) before its measured window
opens, so the figures are those of a load that has been running (its shared reads filled);
`--settle 0` measures from the first request, cold reads included. The client is
a small asyncio HTTP reader (no HTTP library), so the load generator's own CPU stays a small
share of the two cores it shares with the API. It prints requests/s, status counts and
p50/p99/max latency per route, and the CPU the API process used (`--url`: when `--pid` names
it).

Routes of the mix:

| name | request |
| --- | --- |
| stats | `POST /get_endpoint_stats/ {"id": 1}` (current mode) |
| series | `POST /get_endpoint_stats/` with `metric_name=reqrate`, the last 10 minutes |
| metrics | `GET /v2/endpoints/1/metrics?timeframe=1h&granularity=1m` |
| healthz, readyz | `GET /healthz`, `GET /readyz` |

Beside the mix, two paced clients probe `/healthz` and `/readyz` on the probe port
(`VITALS_PROBE_PORT`, query_api/probe_server.py), each once every `--probe-every` seconds
(default 0.05), as an orchestrator does; they are the rows `probe port healthz` and
`probe port readyz`, and are not counted in the requests/s of the mix. A started stack gets a
probe port; with `--url`, `--probe-url` names it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson

__all__ = ["ROUTES", "main"]

ROUTES = ("stats", "series", "metrics", "healthz", "readyz")


def _request(route: str, host: str, key: str, endpoint: int) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n"
    if route == "stats":
        body = orjson.dumps({"id": endpoint})
    elif route == "series":
        now = int(time.time())
        body = orjson.dumps({"id": endpoint, "metric_name": "reqrate", "t1": now - 600,
                             "t2": now})
    elif route == "metrics":
        return (f"GET /v2/endpoints/{endpoint}/metrics?timeframe=1h&granularity=1m HTTP/1.1\r\n"
                f"Host: {host}\r\n{auth}\r\n").encode()
    else:
        return f"GET /{route} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    return (f"POST /get_endpoint_stats/ HTTP/1.1\r\nHost: {host}\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, connection closes) of one HTTP/1.1 answer, its body read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    chunked = close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, close


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


async def _client(host: str, port: int, key: str, endpoint: int, cycle: list[str],
                  offset: int, stop_at: float, tally: Tally, timeout_s: float,
                  interval: float | None = None, label: str = "",
                  from_due: bool = True, measure_from: float = 0.0) -> None:
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    i = offset
    due = time.perf_counter() + (interval * offset / 50 % interval if interval else 0)
    while time.perf_counter() < stop_at:
        route = cycle[i % len(cycle)]
        i += 1
        raw = _request(route, f"{host}:{port}", key, endpoint)
        if interval is not None:
            # paced: latency counts from when the request was due, so a late answer that
            # delays the next request is charged to it too (no coordinated omission)
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            started = due if from_due else time.perf_counter()
            due += interval
        else:
            started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                if conn is None:
                    conn = await asyncio.open_connection(host, port)
                conn[1].write(raw)
                status, close = await _read_answer(conn[0])
            outcome = str(status)
        except TimeoutError:
            outcome, close = "timeout", True
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            outcome, close = type(exc).__name__, True
        if measure_from <= started and time.perf_counter() <= stop_at:
            tally.latencies[label + route].append(time.perf_counter() - started)
            tally.statuses[label + route][outcome] += 1
        if close and conn is not None:
            conn[1].close()
            conn = None
    if conn is not None:
        conn[1].close()


def _cycle(mix: dict[str, int]) -> list[str]:
    """Routes interleaved by weight: stats=2,healthz=1 → stats, healthz, stats."""
    out: list[str] = []
    left = dict(mix)
    while any(left.values()):
        for route in mix:
            if left[route]:
                out.append(route)
                left[route] -= 1
    return out


def _pct(xs: list[float], q: float) -> float:
    ys = sorted(xs)
    return ys[min(len(ys) - 1, int(q * len(ys)))] * 1000 if ys else float("nan")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = vals[3] + vals[4]
    return sum(vals) - idle, sum(vals)


async def idle_cores(pid: int, seconds: float) -> float:
    """Cores the API process uses without read load (its worker ingesting the demo)."""
    cpu0, t0 = _cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(seconds)
    return (_cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)


async def run(url: str, key: str, *, clients: int, duration: float, mix: dict[str, int],
              endpoint: int, pid: int | None, timeout_s: float,
              idle: float | None = None, rate: float | None = None,
              probe_url: str | None = None, probe_every: float = 0.0,
              settle: float = 0.0) -> dict[str, object]:
    """One run: the clients send for `settle` seconds unmeasured (the shared reads fill, as
    under a load that has been running), then for `duration` seconds measured."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    cycle = _cycle(mix)
    tally = Tally()
    measure_from = time.perf_counter() + settle
    clients_done = asyncio.gather(*(
        _client(host, port, key, endpoint, cycle, n, measure_from + duration, tally, timeout_s,
                clients / rate if rate else None, measure_from=measure_from)
        for n in range(clients)))
    await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
    cpu0 = _cpu_seconds(pid) if pid else None
    own0 = time.process_time()
    busy0, total0 = _machine_busy()
    started = time.perf_counter()
    prober = None
    if probe_url and probe_every > 0:
        # an orchestrator's probes, paced, from a process of their own: on this one's loop
        # they would wait behind the mix's clients and measure the load generator
        prober = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.load", "--probe-only", probe_url, "--duration",
            str(duration), "--probe-every", str(probe_every), stdout=subprocess.PIPE)
    await clients_done
    wall = time.perf_counter() - started
    busy1, total1 = _machine_busy()
    probed: dict[str, object] = {}
    if prober is not None:
        probed = orjson.loads((await prober.communicate())[0])
    # the API port's requests (the probe port's are reported per route, not counted here)
    total = sum(len(v) for r, v in tally.latencies.items() if r in mix)
    out: dict[str, object] = {
        "clients": clients, "offered_per_s": rate, "seconds": round(wall, 1), "requests": total,
        "requests_per_s": round(total / duration),
        "ok_per_s": round(sum(c[s] for r, c in tally.statuses.items() if r in mix for s in c
                              if s.startswith("2")) / duration),
        "routes": {r: _route_figures(tally, r) for r in mix if tally.latencies[r]} | probed,
        "load_generator_cores": round((time.process_time() - own0) / wall, 2),
        "machine_busy_cores": round((busy1 - busy0) / max(1, total1 - total0)
                                    * (os.cpu_count() or 1), 2),
    }
    if pid and cpu0 is not None:
        cores = (_cpu_seconds(pid) - cpu0) / wall
        out["api_process_cores"] = round(cores, 2)
        if idle is not None and total:
            out["idle_cores"] = round(idle, 2)
            out["cpu_ms_per_request"] = round((cores - idle) * wall / total * 1000, 3)
    return out


def _parse_mix(text: str) -> dict[str, int]:
    mix: dict[str, int] = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name not in ROUTES:
            raise SystemExit(f"--mix: unknown route {name!r}; routes: {', '.join(ROUTES)}")
        mix[name] = int(weight or 1)
    return mix


def _print(result: dict[str, object]) -> None:
    paced = (f"paced at {result['offered_per_s']:g} requests/s offered"
             if result["offered_per_s"] else "closed loop")
    print(f"clients {result['clients']} ({paced}), {result['seconds']} s: "
          f"{result['requests_per_s']} requests/s ({result['ok_per_s']} 2xx/s); "
          f"API process {result.get('api_process_cores', '?')} cores, load generator "
          f"{result['load_generator_cores']} cores, machine {result['machine_busy_cores']} "
          f"cores busy"
          + (f"; API CPU per request {result['cpu_ms_per_request']} ms (idle "
             f"{result['idle_cores']} cores subtracted)" if "cpu_ms_per_request" in result
             else ""))
    print("| route | requests | statuses | p50 ms | p99 ms | max ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    routes = result["routes"]
    assert isinstance(routes, dict)
    for route, r in routes.items():
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))
        print(f"| {route} | {r['count']} | {statuses} | {r['p50_ms']} | {r['p99_ms']} | "
              f"{r['max_ms']} |")
    sys.stdout.flush()


async def _wait_ready(url: str, key: str, endpoint: int, deadline: float,
                      route: str = "stats") -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(_request(route, f"{host}:{port}", key, endpoint))
                status, _ = await _read_answer(reader)
            finally:
                writer.close()
            if status == 200:
                return
        await asyncio.sleep(0.5)
    raise SystemExit(f"the API did not answer {route} in time")


async def probe_only(probe_url: str, duration: float, every: float) -> dict[str, object]:
    """The probe port's rows: `/healthz` and `/readyz`, each paced at one every `every` s and
    timed from its send, as an orchestrator times its probes (this process's own timer lateness
    is not the server's)."""
    probe = urlsplit(probe_url)
    tally = Tally()
    stop_at = time.perf_counter() + duration
    await asyncio.gather(*(_client(probe.hostname or "127.0.0.1", probe.port or 80, "", 0,
                                   [route], 0, stop_at, tally, 30.0, every,
                                   label="probe port ", from_due=False)
                           for route in ("healthz", "readyz")))
    return {r: _route_figures(tally, r) for r, v in tally.latencies.items() if v}


def _route_figures(tally: Tally, route: str) -> dict[str, object]:
    xs = tally.latencies[route]
    return {"count": len(xs), "statuses": dict(tally.statuses[route]),
            "p50_ms": round(_pct(xs, 0.50), 1), "p99_ms": round(_pct(xs, 0.99), 1),
            "max_ms": round(max(xs) * 1000, 1)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_stack(data_dir: Path, env_extra: dict[str, str]) -> tuple[subprocess.Popen[bytes],
                                                                     str, str]:
    env = {**os.environ, "VITALS_DATA_DIR": str(data_dir), "VITALS_API_PORT": "0",
           "VITALS_STATSD_PORT": "off", **env_extra}
    log = open(data_dir / "up.log", "wb")  # noqa: SIM115 (kept open for the child)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "up", "--demo"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    url_file, key_file = data_dir / "api.url", data_dir / "admin.key"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"vitals up exited: {(data_dir / 'up.log').read_text()[-2000:]}")
        if url_file.exists() and key_file.exists():
            url, key = url_file.read_text().strip(), key_file.read_text().strip()
            if url and key:
                return proc, url, key
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("vitals up did not start in 180 s")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[50],
                    help="concurrent keep-alive clients; several values: one run each")
    ap.add_argument("--rate", type=float,
                    help="paced (open loop): requests/s offered in all, spread evenly over the "
                         "clients (default: closed loop, each client sends again as soon as "
                         "it has its answer)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    ap.add_argument("--mix", default="stats=1,series=1,metrics=1,healthz=1",
                    help=f"route=weight,… over {', '.join(ROUTES)}")
    ap.add_argument("--endpoint", type=int, default=1)
    ap.add_argument("--url", help="a running API (default: start `vitals up --demo`)")
    ap.add_argument("--key", help="API key for --url (default: <VITALS_DATA_DIR>/admin.key)")
    ap.add_argument("--pid", type=int, help="the API process of --url, for its CPU figure")
    ap.add_argument("--warmup", type=float, default=10.0,
                    help="seconds of demo traffic before the first run (started stack)")
    ap.add_argument("--settle", type=float, default=2.0,
                    help="seconds each run's clients send before its measured window opens "
                         "(0: measure from the first request, cold shared reads included)")
    ap.add_argument("--idle", type=float, default=5.0,
                    help="seconds measuring the API process's CPU without read load, "
                         "subtracted for the CPU-per-request figure (0: skip)")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, s")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="setting for the started stack (repeatable)")
    ap.add_argument("--probe-every", type=float, default=0.05, metavar="SECONDS",
                    help="also probe /healthz and /readyz on the probe port (VITALS_PROBE_PORT), "
                         "each once every SECONDS, as an orchestrator does; 0: no probes")
    ap.add_argument("--probe-url", help="the probe port of --url (a started stack gets one)")
    ap.add_argument("--probe-only", metavar="PROBE_URL", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help="also print each run as JSON")
    args = ap.parse_args()
    if args.probe_only:
        result = await probe_only(args.probe_only, args.duration, args.probe_every)
        sys.stdout.write(orjson.dumps(result).decode())
        return
    mix = _parse_mix(args.mix)
    proc: subprocess.Popen[bytes] | None = None
    tmp: tempfile.TemporaryDirectory[str] | None = None
    try:
        probe_url = args.probe_url
        if args.url:
            url, pid = args.url, args.pid
            key = args.key or (Path(os.environ.get("VITALS_DATA_DIR", ".data")) / "admin.key"
                               ).read_text().strip()
        else:
            tmp = tempfile.TemporaryDirectory(prefix="vitals-load-")
            env = dict(e.split("=", 1) for e in args.env)
            if args.probe_every > 0:
                env.setdefault("VITALS_PROBE_PORT", str(_free_port()))
                probe_url = f"http://127.0.0.1:{env['VITALS_PROBE_PORT']}"
            proc, url, key = _start_stack(Path(tmp.name), env)
            pid = proc.pid
            print(f"started vitals up --demo (pid {pid}) at {url}"
                  + (f" with {' '.join(args.env)}" if args.env else ""))
        # a started stack is measured once the demo's endpoint answers stats
        await _wait_ready(url, key, args.endpoint, time.monotonic() + 120,
                          "healthz" if args.url else "stats")
        if proc is not None:
            await asyncio.sleep(args.warmup)
        idle = await idle_cores(pid, args.idle) if pid and args.idle > 0 else None
        for clients in args.clients:
            result = await run(url, key, clients=clients, duration=args.duration, mix=mix,
                               endpoint=args.endpoint, pid=pid, timeout_s=args.timeout,
                               idle=idle, rate=args.rate, probe_url=probe_url,
                               probe_every=args.probe_every, settle=args.settle)
            _print(result)
            if args.json:
                print(orjson.dumps(result).decode())
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
