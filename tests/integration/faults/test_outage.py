"""The broker goes away for 30 s under load (issue 15, point 1): `vitals up` stays quiet
(CPU time and log lines measured over the outage), `/readyz` says so and recovers by itself,
every acknowledged event is stored exactly once afterwards, and a signal during a second
outage still stops the process within 10 s.

Runs on a private broker that the test stops and restarts (same home: same port, same data).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

from pipeline.local.kafka import LocalKafka
from pipeline.sdk.producer import Producer
from pipeline.sdk.producer_errors import DeliveryFailed, ProducerError
from tests.integration.faults.harness import VitalsProcess, assert_exact, names, workload
from tests.integration.faults.ledger import LEDGER_KINDS, Ledger, distinct_stored, stored_ids
from tests.integration.kafka_fixture import JAR_CACHE

OUTAGE_S = 30.0
MAX_CPU_SHARE = 0.075  # of one core while waiting (the issue's ~5 %: 3.4–6.3 % measured)
MAX_LOG_LINES = 4  # the cause once (Vitals' line + one per client family), no repeats in 30 s


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_ticks(pid: int) -> dict[str, int]:
    """CPU clock ticks per thread name (names are shared: summed)."""
    out: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        out[name] = out.get(name, 0) + int(fields[11]) + int(fields[12])
    return out


def log_lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


async def readyz(vp: VitalsProcess) -> int:
    with contextlib.suppress(Exception):
        return (await vp.http.get(vp.url + "/readyz", timeout=5)).status_code
    return 0


async def adopt_written(ledger: Ledger, vp: VitalsProcess) -> int:
    """Move events the SDK reported as failed but Kafka did write (a write whose answer was
    lost with the broker: "Kafka may still write them") to the acknowledged ones; returns how
    many. Waits until every acknowledged event is stored first."""
    want = {k: len(v) for k, v in ledger.acked.items()}

    async def at_least() -> bool:
        got = await distinct_stored(vp.sql, vp.database)
        return all(got.get(k, 0) >= n for k, n in want.items())

    await vp.wait_for(at_least, True, 120)
    moved = 0
    for kind, lk in LEDGER_KINDS.items():
        stored = await stored_ids(vp.sql, vp.database, lk)
        for event_id in [i for i in ledger.failed.get(kind, {}) if i in stored]:
            ledger.acked[kind][event_id] = ledger.failed[kind].pop(event_id)
            moved += 1
    return moved


async def test_broker_outage_is_quiet_truthful_and_exact(tmp_path):
    kafka = LocalKafka(tmp_path / "broker", cache_dir=JAR_CACHE, progress=lambda _m: None)
    info = await asyncio.to_thread(kafka.start, 120.0)
    _, topics, db, group = names()
    # batches of a realistic size: the harness's 4-message batches leave the embedded engine
    # merging thousands of tiny parts well into the outage (measured: 15 % of a core)
    env = {"VITALS_STATSD_PORT": "0", "VITALS_BATCH_MAX_MESSAGES": "200",
           "VITALS_BATCH_MAX_SECONDS": "0.2"}
    vp = VitalsProcess(tmp_path / "data", bootstrap=info.bootstrap, topics=topics, database=db,
                       group=group, extra_env=env)
    ledger = Ledger(topics)
    t0, span = int(time.time()) - 400, 300
    requests, heartbeats = workload(3000, t0=t0, span_s=span)
    try:
        await vp.start()
        assert vp.proc is not None
        pid = vp.proc.pid
        stop_load = asyncio.Event()

        async def load() -> int:
            """A steady trickle (~100 events/s) through the SDK, before, during and after."""
            sent = 0
            # events refused while the broker is away are not acknowledged (the ledger counts
            # only acknowledged ones); close() reports them as DeliveryFailed
            with contextlib.suppress(DeliveryFailed):
                async with Producer(info.bootstrap, topics, max_events=10,
                                    on_delivery=ledger.on_delivery) as p:
                    for i, e in enumerate(requests):
                        if stop_load.is_set():
                            break
                        with contextlib.suppress(ProducerError):
                            await p.send("requests", e)
                            if i < len(heartbeats):
                                await p.send("heartbeats", heartbeats[i])
                            sent += 1
                        await asyncio.sleep(0.01)
            return sent

        producer = asyncio.create_task(load())
        await vp.wait_for(lambda: readyz(vp), 200, 60)
        await asyncio.sleep(3)

        await asyncio.to_thread(kafka.stop)
        await vp.wait_for(lambda: readyz(vp), 503, 5)
        await asyncio.sleep(2)  # the outage's first lines are allowed: the cause, once
        lines0, cpu0, wall0 = len(log_lines(vp.log_path)), cpu_seconds(pid), time.monotonic()
        ticks0 = thread_ticks(pid)
        await asyncio.sleep(OUTAGE_S)
        cpu_share = (cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0)
        ticks = {k: v - ticks0.get(k, 0) for k, v in thread_ticks(pid).items()}
        busiest = sorted(ticks.items(), key=lambda kv: -kv[1])[:6]
        during = log_lines(vp.log_path)[lines0:]
        assert (await vp.http.get(vp.url + "/healthz")).status_code == 200

        again = await asyncio.to_thread(kafka.start, 120.0)
        assert again.bootstrap == info.bootstrap
        t_back = time.monotonic()
        await vp.wait_for(lambda: readyz(vp), 200, 60)
        ready_after = time.monotonic() - t_back
        await asyncio.sleep(5)
        stop_load.set()
        sent = await producer

        written = await adopt_written(ledger, vp)
        lines = await assert_exact(vp, ledger, t0=t0, span_s=span)
        print(f"\nbroker outage {OUTAGE_S:.0f} s under load: {sent} requests (+heartbeats) "
              f"sent, {ledger.messages} messages acknowledged; vitals up CPU during the outage "
              f"{100 * cpu_share:.1f} % of a core, {len(during)} log lines; /readyz 200 again "
              f"{ready_after:.1f} s after the broker; {written} events reported failed by the SDK "
              f"were written by Kafka; " + "; ".join(lines) + f"; busiest threads {busiest}")
        assert cpu_share < MAX_CPU_SHARE, f"{100 * cpu_share:.1f} % of a core; ticks {busiest}"
        assert len(during) <= MAX_LOG_LINES, "\n".join(during[:20])
        assert not any("never retrieved" in line for line in log_lines(vp.log_path))

        # a second outage, then SIGINT: the stop does not wait for the absent broker
        await asyncio.to_thread(kafka.stop)
        await vp.wait_for(lambda: readyz(vp), 503, 5)
        t_sig = time.monotonic()
        vp.proc.send_signal(signal.SIGINT)
        assert await vp.wait_exit(20) == 0
        took = time.monotonic() - t_sig
        print(f"SIGINT during the outage: stopped in {took:.1f} s")
        assert took < 10, vp.log_tail()
    finally:
        await vp.close()
        await asyncio.to_thread(kafka.stop)
