"""Fault-test harness: a deterministic workload, and `vitals up` run as a real subprocess.

`VitalsProcess` starts `python -m pipeline.cli.main up` (worker + API in one process, embedded
ClickHouse in its data dir) against the session's broker. A killed process releases the engine's
lock on its data dir; the next `start()` reopens it. ClickHouse is read only through the running
process's `POST /sql` route with the superadmin key `vitals up` writes to `<data dir>/admin.key`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.core.settings import TopicNames
from pipeline.sdk.producer import Producer
from tests.integration.faults.ledger import (
    KindReport,
    Ledger,
    check_ledger,
    distinct_stored,
    request_truth,
    rollup_totals,
    same_totals,
    timeseries_truth,
)

REPO = Path(__file__).resolve().parents[3]
TENANT = "acme"
ENDPOINTS = (1, 2, 3)
WINDOW_S = 60


def workload(n_requests: int, *, t0: int, span_s: int, seed: int = 7, id_prefix: str = "r",
             endpoints: tuple[int, ...] = ENDPOINTS
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Requests with unique ids over [t0, t0 + span_s), and heartbeats every 10 s per worker."""
    rng = random.Random(seed)
    requests = []
    for i in range(n_requests):
        ep = endpoints[i % len(endpoints)]
        status = rng.choice((200, 200, 200, 200, 201, 429, 500, 503))
        e: dict[str, Any] = {
            "v": 1, "type": "request", "id": f"{id_prefix}{i}", "tenant": TENANT,
            "ts": t0 + rng.random() * span_s, "endpoint_id": ep, "endpoint": f"ep-{ep}",
            "autogroup_id": 10 * ep + i % 2, "worker_id": 100 * ep + i % 4, "status": status,
            "latency_ms": round(rng.lognormvariate(4, 1), 3), "work_units": float(1 + i % 3)}
        if status == 200 and rng.random() < 0.05:
            e["error_kind"] = "timeout"
        requests.append(e)
    heartbeats = []
    for ep in endpoints:
        for w in range(2):
            for t in range(t0, t0 + span_s, 10):
                heartbeats.append({
                    "v": 1, "type": "heartbeat", "ts": t + 0.5 + w * 0.01, "tenant": TENANT,
                    "endpoint_id": ep, "autogroup_id": 10 * ep + w, "id": 100 * ep + w,
                    "max_perf": 10.0 + w, "cur_load": 1.0})
    return requests, heartbeats


async def publish(bootstrap: str, topics: TopicNames, ledger: Ledger,
                  requests: list[dict[str, Any]], heartbeats: list[dict[str, Any]], *,
                  max_events: int = 10) -> None:
    """Send everything through the SDK and wait for every acknowledgement."""
    async with Producer(bootstrap, topics, max_events=max_events,
                        on_delivery=ledger.on_delivery) as p:
        for i in range(max(len(requests), len(heartbeats))):
            if i < len(requests):
                await p.send("requests", requests[i])
            if i < len(heartbeats):
                await p.send("heartbeats", heartbeats[i])


class VitalsProcess:
    """`vitals up` in a subprocess, on one data dir; restartable after it dies."""

    def __init__(self, data_dir: Path, *, bootstrap: str, topics: TopicNames, database: str,
                 group: str, partitions: int = 2, extra_env: dict[str, str] | None = None
                 ) -> None:
        self.data_dir = data_dir
        self.database = database
        self.env = {
            **os.environ, "KAFKA_BOOTSTRAP": bootstrap, "VITALS_DATA_DIR": str(data_dir),
            "VITALS_API_PORT": "0", "VITALS_KAFKA_PORT": "0", "VITALS_TOPIC_PREFIX": topics.prefix,
            "VITALS_CONSUMER_GROUP": group, "CLICKHOUSE_DATABASE": database,
            "VITALS_TOPIC_PARTITIONS": str(partitions), "VITALS_BATCH_MAX_MESSAGES": "4",
            "VITALS_BATCH_MAX_SECONDS": "0.05", "VITALS_SESSION_TIMEOUT_S": "6",
            # a free DogStatsD port: another test file's `vitals up` may hold the default
            "VITALS_STATSD_PORT": "0",
            "PYTHONPATH": str(REPO), **(extra_env or {}),
        }
        self.env.pop("VITALS_FAULT", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.key = ""
        self.runs = 0
        self.http = httpx.AsyncClient(timeout=60)

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"run-{self.runs}.log"

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    async def start(self, fault: str | None = None, timeout: float = 120) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "api.url").unlink(missing_ok=True)
        self.runs += 1
        env = dict(self.env)
        if fault:
            env["VITALS_FAULT"] = fault
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli.main", "up"], cwd=REPO, env=env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        url_file, key_file = self.data_dir / "api.url", self.data_dir / "admin.key"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"vitals up exited with {self.proc.returncode} during "
                                     f"startup:\n{self.log_tail()}")
            if url_file.exists() and key_file.exists():
                self.url = url_file.read_text().strip()
                self.key = key_file.read_text().strip()
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"vitals up not ready in {timeout} s:\n{self.log_tail()}")

    async def wait_exit(self, timeout: float = 120) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"vitals up still running after {timeout} s:\n"
                                     f"{self.log_tail()}")
            await asyncio.sleep(0.1)
        return self.proc.returncode

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await self.wait_exit(60)
            except AssertionError:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    async def close(self) -> None:
        await self.stop()
        await self.http.aclose()

    async def sql(self, query: str) -> list[dict[str, Any]]:
        r = await self.http.post(self.url + "/sql", json={"query": query,
                                                          "format": "JSONEachRow"},
                                 headers={"Authorization": f"Bearer {self.key}"})
        assert r.status_code == 200, f"{r.status_code} {r.text[:500]}"
        return [orjson.loads(line) for line in r.content.splitlines() if line.strip()]

    async def post(self, path: str, body: dict[str, Any], key: str | None = None) -> Any:
        r = await self.http.post(self.url + path, json=body,
                                 headers={"Authorization": f"Bearer {key or self.key}"})
        assert r.status_code < 300, f"{path}: {r.status_code} {r.text[:500]}"
        return r.json()

    async def consumed_messages(self) -> int:
        """Kafka messages this process's worker has processed (its /metrics)."""
        r = await self.http.get(self.url + "/metrics")
        return sum(int(float(line.rsplit(" ", 1)[1])) for line in r.text.splitlines()
                   if line.startswith("vitals_messages_consumed_total{"))

    async def wait_for(self, probe: Callable[[], Any], expected: Any,
                       timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"vitals up died ({self.proc.returncode}):\n"
                                     f"{self.log_tail()}")
            last = await probe()
            if last == expected:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out waiting for {expected!r}; last {last!r}\n"
                             f"{self.log_tail()}")


async def trickle_through(p: Producer, requests: list[dict[str, Any]],
                          heartbeats: list[dict[str, Any]],
                          fault: Callable[[], Awaitable[Any]], *, at: int = 500) -> None:
    """Send `requests`, each followed by the heartbeat of its index while there are any, in a
    steady trickle; start `fault` after the `at`-th request and wait until it is over."""
    task = None
    for i, e in enumerate(requests):
        await p.send("requests", e)
        if i < len(heartbeats):
            await p.send("heartbeats", heartbeats[i])
        if i == at:
            task = asyncio.create_task(fault())
        if i % 10 == 0:
            await asyncio.sleep(0.05)  # a steady trickle through the fault
    assert task is not None
    await task


async def committed(bootstrap: str, group: str) -> int:
    """Sum of the consumer group's committed offsets (messages it will not see again)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(max(0, meta.offset) for meta in offsets.values())


def names(tag: str | None = None) -> tuple[str, TopicNames, str, str]:
    tag = tag or uuid.uuid4().hex[:10]
    return tag, TopicNames(prefix=f"f{tag}-"), f"f_{tag}", f"fg{tag}"


class InProcess:
    """The `VitalsProcess` reading interface over an in-process `Stack` (conftest)."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.database = stack.settings.clickhouse_database
        self.admin = ""

    async def sql(self, query: str) -> list[dict[str, Any]]:
        raw = await self.stack.rt.store.raw(query, "JSONEachRow")
        return [orjson.loads(line) for line in raw.splitlines() if line.strip()]

    async def post(self, path: str, body: dict[str, Any], key: str | None = None) -> Any:
        if key is None:
            self.admin = self.admin or await self.stack.key("default", "superadmin")
        r = await self.stack.http.post(path, json=body,
                                       headers={"Authorization": f"Bearer {key or self.admin}"})
        assert r.status_code < 300, f"{path}: {r.status_code} {r.text[:500]}"
        return r.json()

    async def wait_for(self, probe: Callable[[], Any], expected: Any,
                       timeout: float = 120) -> None:
        await self.stack.wait_for(probe, expected, timeout)


async def verify(vp: VitalsProcess | InProcess, ledger: Ledger, *, t0: int, span_s: int,
                 endpoints: tuple[int, ...] = ENDPOINTS, settle_s: float = 120
                 ) -> tuple[dict[str, KindReport], list[str]]:
    """Wait (up to `settle_s`) until every acknowledged event is stored, then compare the
    ledger, the rollups (1s/1m/1h: counts, successes, work, latency histogram and its
    percentiles) and the stats API's timeseries with ground truth. Returns the ledger reports
    and every stats difference ([] when exact)."""
    want = {k: len(v) for k, v in ledger.acked.items()}
    with contextlib.suppress(AssertionError):  # a shortfall is reported as lost below
        await vp.wait_for(lambda: distinct_stored(vp.sql, vp.database), want, settle_s)
    reports = await check_ledger(ledger, vp.sql, vp.database)
    diffs: list[str] = []
    truth = request_truth(ledger.events("requests"))
    for table in ("requests_1s", "requests_1m", "requests_1h"):
        # The views write a batch's rollup rows right after its raw rows, in the same insert:
        # a read between the two sees the raw rows first. Wait (briefly) for that insert.
        async def table_diffs(table: str = table) -> list[str]:
            got = await rollup_totals(vp.sql, vp.database, table)
            return [f"{table}: {d}" for d in same_totals(got, truth)]

        with contextlib.suppress(AssertionError):
            await vp.wait_for(table_diffs, [], 30)
        diffs += await table_diffs()
    reader = (await vp.post("/admin/keys", {"tenant": TENANT, "role": "reader"}))["key"]
    points_t1, points_t2, step = t0 + 30, t0 + span_s + WINDOW_S, 15
    points = list(range(points_t1, points_t2, step))
    for ep in endpoints:
        for metric in ("totreqs", "reqrate", "reliable", "curload"):
            got_series = (await vp.post("/get_endpoint_stats/", {
                "id": ep, "metric_name": metric, "t1": points_t1, "t2": points_t2,
                "step": step}, key=reader))[metric]
            want_series = timeseries_truth(ledger.events("requests"), tenant=TENANT,
                                           endpoint_id=ep, metric=metric, points=points,
                                           window_s=WINDOW_S)
            if got_series != want_series:
                diffs.append(f"endpoint {ep} {metric}: got {got_series}, want {want_series}")
    return reports, diffs


async def assert_exact(vp: VitalsProcess | InProcess, ledger: Ledger, *, t0: int, span_s: int,
                       endpoints: tuple[int, ...] = ENDPOINTS) -> list[str]:
    """`verify`, asserting: no loss, no duplicate, every stat equal to ground truth. Returns
    the ledger lines for the record."""
    reports, diffs = await verify(vp, ledger, t0=t0, span_s=span_s, endpoints=endpoints)
    for r in reports.values():
        assert r.exact, r.line() + f" lost {r.lost[:5]} duplicated {r.duplicated[:5]}"
    assert not diffs, diffs[:5]
    return [r.line() for r in reports.values()]
