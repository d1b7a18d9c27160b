"""The large fault matrix: kill -9 the worker at every fault point, several times over, during a
rebalance, and restart the broker under load; check the ledger and the stats after each.

Each scenario runs `vitals up` as a subprocess (tests/integration/faults/harness.py) on a private
broker and its own embedded ClickHouse, publishes a workload through the SDK with delivery
reports, injects the fault, restarts what died, and compares what Kafka acknowledged with what
ClickHouse holds (distinct ids after FINAL) and every stat with ground truth.

Usage (from the repo root)::

    python -m bench.faults                      # 3 points x n in (2, 7, 20), rebalance, broker
    python -m bench.faults --events 2000 --nth 3 --points after_insert

Prints one table row per scenario: faults injected, events acknowledged, lost, duplicated,
physical rows (redeliveries written twice and collapsed by FINAL), stats exact.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.settings import Settings
from pipeline.core.telemetry import Telemetry
from pipeline.ingest.worker import create_worker_app
from pipeline.local.kafka import LocalKafka
from tests.integration.faults.harness import VitalsProcess, names, publish, verify, workload
from tests.integration.faults.ledger import Ledger
from tests.integration.kafka_fixture import JAR_CACHE

__all__ = ["main"]


@dataclass
class Row:
    scenario: str
    faults: int
    acked: int
    lost: int
    duplicated: int
    physical: int
    stored: int
    exact_stats: bool
    seconds: float

    def render(self) -> str:
        return (f"| {self.scenario} | {self.faults} | {self.acked:,} | {self.lost} | "
                f"{self.duplicated} | {self.physical - self.stored:,} | "
                f"{'yes' if self.exact_stats else 'NO'} | {self.seconds:.0f} |")


MAX_KILLS = 5  # per scenario: a worker killed at batch n before committing never progresses

HEADER = ("| scenario | faults injected | events acknowledged | lost | duplicated | "
          "redelivered rows collapsed by FINAL | stats = ground truth | s |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")


async def _finish(name: str, vp: VitalsProcess, ledger: Ledger, faults: int, t0: int, span: int,
                  began: float) -> Row:
    reports, diffs = await verify(vp, ledger, t0=t0, span_s=span)
    return Row(name, faults, sum(r.acked for r in reports.values()),
               sum(len(r.lost) for r in reports.values()),
               sum(len(r.duplicated) for r in reports.values()),
               sum(r.physical for r in reports.values()),
               sum(r.stored for r in reports.values()), not diffs, time.monotonic() - began)


async def kill_at(bootstrap: str, root: Path, point: str, nth: int, events: int) -> Row:
    """Kill at `point` the nth time, restart, kill again at the next nth... until the workload
    is through; then one clean restart."""
    _, topics, db, group = names()
    vp = VitalsProcess(root / f"{point}-{nth}", bootstrap=bootstrap, topics=topics,
                       database=db, group=group)
    ledger = Ledger(topics)
    t0, span = int(time.time()) - 400, 300
    began = time.monotonic()
    requests, heartbeats = workload(events, t0=t0, span_s=span)
    faults = 0

    async def start_faulty() -> None:
        """Start with the fault armed; a process killed before its API came up counts too."""
        nonlocal faults
        while True:
            try:
                await vp.start(fault=f"{point}:{nth}" if faults < MAX_KILLS else None)
                return
            except AssertionError:
                assert vp.proc is not None and vp.proc.returncode == -signal.SIGKILL, \
                    vp.log_tail()
                faults += 1

    try:
        await start_faulty()
        await publish(bootstrap, topics, ledger, requests, heartbeats)
        while faults < MAX_KILLS:
            try:
                code = await vp.wait_exit(timeout=20)
            except AssertionError:
                break  # caught up without reaching the fault point again
            assert code == -signal.SIGKILL, vp.log_tail()
            faults += 1
            await start_faulty()
        await vp.stop()
        await vp.start()
        return await _finish(f"kill -9 at {point}:{nth}", vp, ledger, faults, t0, span, began)
    finally:
        await vp.close()


class StalledStore:
    database = "stalled"

    async def insert(self, table: object, columns: object, names: object) -> None:
        await asyncio.Event().wait()


async def kill_in_rebalance(bootstrap: str, root: Path, events: int) -> Row:
    _, topics, db, group = names()
    vp = VitalsProcess(root / "rebalance", bootstrap=bootstrap, topics=topics, database=db,
                       group=group)
    ledger = Ledger(topics)
    t0, span = int(time.time()) - 400, 300
    began = time.monotonic()
    requests, heartbeats = workload(events, t0=t0, span_s=span)
    half = len(requests) // 2
    try:
        await vp.start(fault="rebalance:1")
        await publish(bootstrap, topics, ledger, requests[:half], heartbeats)
        settings = Settings(kafka_bootstrap=bootstrap, topics=topics, consumer_group=group,
                            topic_partitions=2, session_timeout_s=6)
        member = create_worker_app(settings, StalledStore(), Telemetry())  # type: ignore[arg-type]
        member.finalize()
        await member.start()
        await publish(bootstrap, topics, ledger, requests[half:], [])
        code = await vp.wait_exit()
        assert code == -signal.SIGKILL, vp.log_tail()
        await member.stop()
        await vp.start()
        return await _finish("kill -9 during a rebalance", vp, ledger, 1, t0, span, began)
    finally:
        await vp.close()


async def broker_restart(root: Path, events: int, restarts: int) -> Row:
    kafka = LocalKafka(root / "broker-restart-kafka", cache_dir=JAR_CACHE,
                       progress=lambda _m: None)
    info = await asyncio.to_thread(kafka.start, 120.0)
    _, topics, db, group = names()
    vp = VitalsProcess(root / "broker-restart", bootstrap=info.bootstrap, topics=topics,
                       database=db, group=group)
    ledger = Ledger(topics)
    t0, span = int(time.time()) - 400, 300
    began = time.monotonic()
    requests, heartbeats = workload(events, t0=t0, span_s=span)
    try:
        await vp.start()
        chunk = len(requests) // (restarts + 1)
        for i in range(restarts + 1):
            sender = asyncio.create_task(publish(
                info.bootstrap, topics, ledger, requests[i * chunk:(i + 1) * chunk],
                heartbeats if i == 0 else []))
            if i < restarts:
                await asyncio.sleep(0.5)
                await asyncio.to_thread(kafka.stop)
                await asyncio.sleep(1)
                await asyncio.to_thread(kafka.start, 120.0)
            await sender
        return await _finish(f"broker restarted {restarts}x under load", vp, ledger, restarts,
                             t0, span, began)
    finally:
        await vp.close()
        await asyncio.to_thread(kafka.stop)


async def run(args: argparse.Namespace) -> list[Row]:
    root = Path(tempfile.mkdtemp(prefix="vitals-faults-"))
    kafka = LocalKafka(root / "kafka", cache_dir=JAR_CACHE, progress=lambda _m: None)
    info = await asyncio.to_thread(kafka.start, 120.0)
    rows: list[Row] = []
    try:
        for point in args.points:
            for nth in args.nth:
                rows.append(await kill_at(info.bootstrap, root, point, nth, args.events))
                print(rows[-1].render(), flush=True)
        if args.rebalance:
            rows.append(await kill_in_rebalance(info.bootstrap, root, args.events))
            print(rows[-1].render(), flush=True)
        if args.broker_restarts:
            rows.append(await broker_restart(root, args.events, args.broker_restarts))
            print(rows[-1].render(), flush=True)
    finally:
        await asyncio.to_thread(kafka.stop)
        shutil.rmtree(root, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=3000, help="requests per scenario")
    p.add_argument("--points", type=lambda t: t.split(","),
                   default=["before_insert", "after_insert", "after_commit"])
    p.add_argument("--nth", type=lambda t: [int(x) for x in t.split(",")], default=[2, 7, 20])
    p.add_argument("--no-rebalance", dest="rebalance", action="store_false")
    p.add_argument("--broker-restarts", type=int, default=2)
    args = p.parse_args(argv)
    print(HEADER, flush=True)
    rows = asyncio.run(run(args))
    bad = [r for r in rows if r.lost or r.duplicated or not r.exact_stats]
    total = sum(r.acked for r in rows)
    print(f"\n{len(rows)} scenarios, {sum(r.faults for r in rows)} faults injected, "
          f"{total:,} events acknowledged, lost {sum(r.lost for r in rows)}, "
          f"duplicated {sum(r.duplicated for r in rows)}; "
          f"{'all exact' if not bad else f'{len(bad)} scenarios NOT exact'}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
