"""A real vast.ai worker reports to Vitals unchanged: two processes run the `vastai` package's
`Worker` (pyworker_app.py) with `REPORT_ADDR=<vitals>/vast/<endpoint>` and
`…/vast/<endpoint>/<autogroup>`, `MASTER_TOKEN` = an ingest key. They fetch `/pubkey/` (and
then accept only requests signed with Vitals' key), report `/worker_status/` and
`/delete_requests/`; their reports go through Kafka like every producer's, and
`/get_endpoint_stats/` and `/get_autogroup_stats/` count them: nworkers, capacity (their
benchmark results), curload (the work they report), totreqs, reqrate and reliable (their
request outcomes), each against the ground truth of the requests sent here."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from query_api.vast_worker import signing

EP, AG = 31, 3101
WINDOW = 600
APP = Path(__file__).with_name("pyworker_app.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RealWorker:
    """One pyworker process and the URL its requests go to."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def reported(self, name: str) -> float:
        """Σ `name` over the status reports the worker logged (it logs each before sending;
        every one here was accepted: Vitals answered 200)."""
        text = self.log.read_text(errors="replace")
        total = 0.0
        for block in text.split("#" * 20 + " Worker Status " + "#" * 20)[1:]:
            report = json.loads(block[:block.index("#" * 55)])
            total += report[name]
        return total


@pytest.fixture
async def start_worker(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[RealWorker] = []

    async def start(container_id: int, report_addr: str, token: str,
                    benchmark: float) -> RealWorker:
        cwd = tmp_path / f"worker-{container_id}"
        cwd.mkdir()
        (cwd / ".has_benchmark").write_text(str(benchmark))
        port, http_port = _free_port(), _free_port()
        env = {**os.environ, "CONTAINER_ID": str(container_id), "REPORT_ADDR": report_addr,
               "MASTER_TOKEN": token, "WORKER_PORT": str(port),
               "WORKER_HTTP_PORT": str(http_port), f"VAST_TCP_PORT_{port}": str(port),
               "PUBLIC_IPADDR": "127.0.0.1", "USE_SSL": "false"}
        log = cwd / "worker.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, str(APP)], cwd=cwd, env=env,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        worker = RealWorker(proc, f"http://127.0.0.1:{port}", log)
        started.append(worker)
        async with httpx.AsyncClient() as client:
            for _ in range(200):  # the worker's HTTP server is up once it answers at all
                try:
                    await client.post(worker.url + "/generate", json={})
                    return worker
                except httpx.TransportError:
                    assert proc.poll() is None, worker.tail()
                    await asyncio.sleep(0.1)
        raise AssertionError(f"the worker did not start:\n{worker.tail()}")

    yield start
    for w in started:
        if w.proc.poll() is None:
            os.killpg(w.proc.pid, signal.SIGTERM)
            try:
                w.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(w.proc.pid, signal.SIGKILL)
                w.proc.wait(10)


async def _call(client: httpx.AsyncClient, worker: RealWorker, data_dir: Path, idx: int,
                payload: dict[str, Any], *, signed: bool = True) -> int:
    """One request as the vast.ai router sends it: auth_data signed for its url."""
    url = f"{worker.url}/generate"
    auth = {"cost": "1", "endpoint": "vitals-test", "reqnum": idx, "request_idx": idx,
            "url": url, "signature": signing.sign(data_dir, url if signed else "forged")}
    r = await client.post(url, json={"auth_data": auth, "payload": payload})
    return r.status_code


async def test_an_unchanged_vast_worker_is_counted(stack_factory, start_worker):
    stack = await stack_factory(stats_window_s=WINDOW)
    api = stack.rt.api_url
    token = await stack.key("acme", "ingest")
    reader = await stack.key("acme", "reader")
    data_dir = stack.settings.data_dir
    a = await start_worker(501, f"{api}/vast/{EP}", token, 12.5)
    b = await start_worker(502, f"{api}/vast/{EP}/{AG}", token, 7.5)

    # the workers trust /pubkey/ once fetched: a signed request is served, a forged one is
    # rejected (401 from the worker, reported as a rejected request)
    plan = {a: [({"units": 3}, True, 200)] * 6 + [({"units": 2, "fail": True}, True, 500),
                                                  ({"units": 5}, False, 401)],
            b: [({"units": 4}, True, 200)] * 3 + [({"units": 1}, False, 401)]}
    early = {a: 0, b: 0}  # signed requests the worker refused before it had the key
    async with httpx.AsyncClient(timeout=30) as client:
        for worker, calls in plan.items():
            for _ in range(300):  # the pubkey arrives within a second of the start
                if await _call(client, worker, data_dir, 0, {"units": 0}) == 200:
                    break
                early[worker] += 1
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"the worker never accepted a signed request:\n"
                                     f"{worker.tail()}")
            for i, (payload, signed, want) in enumerate(calls, start=1):
                assert await _call(client, worker, data_dir, i, payload, signed=signed) == want
                await asyncio.sleep(0.3)
    # ground truth, the warm-up request (0 units) included; a refused request is reported as
    # rejected, like the forged ones
    served = {a: 1 + 6, b: 1 + 3}
    failed = {a: 2 + early[a], b: 1 + early[b]}
    # the work each worker reported: its new_load totals. They can miss a request's units
    # when it arrived while a report was in flight (pyworker resets its totals after the
    # report), so the truth is what the workers logged, never more than the work accepted.
    await asyncio.sleep(3)  # a pending report goes out within a second
    units = {w: w.reported("new_load") for w in (a, b)}
    assert units[a] <= 6 * 3 + 2 and units[b] <= 3 * 4 and units[a] + units[b] > 0

    async def stats(path: str, ident: int) -> dict[str, Any]:
        r = await stack.http.post(path, json={"id": ident, "api_key": reader})
        assert r.status_code == 200, r.text
        return r.json()

    total = sum(served.values()) + sum(failed.values())
    want = {"nworkers": 2, "capacity": 20.0, "totreqs": total,
            "reqrate": total / WINDOW, "curload": sum(units.values()) / WINDOW,
            "reliable": sum(served.values()) / total}

    async def endpoint_view() -> dict[str, Any]:
        got = await stats("/get_endpoint_stats/", EP)
        return {k: (round(v, 9) if isinstance(v, float) else v) for k, v in got.items()
                if k in want}

    try:
        await stack.wait_for(endpoint_view, {k: (round(v, 9) if isinstance(v, float) else v)
                                             for k, v in want.items()}, timeout=90)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- worker a ---\n{a.tail()}") from None
    now = int(time.time())  # the timeseries mode counts the reported load the same way
    r = await stack.http.post("/get_endpoint_stats/", json={
        "id": EP, "api_key": reader, "metric_name": "curload", "t1": now, "t2": now + 1})
    assert r.json()["curload"] == [pytest.approx(sum(units.values()) / WINDOW)]
    group = await stats("/get_autogroup_stats/", AG)
    assert group["nworkers"] == 1 and group["capacity"] == 7.5
    assert group["totreqs"] == served[b] + failed[b]
    assert group["curload"] == pytest.approx(units[b] / WINDOW)
    assert group["reliable"] == pytest.approx(served[b] / (served[b] + failed[b]))

    # what was stored: the workers' ids, no error, and request outcomes classified
    rows = await stack.rows("SELECT worker_id, argMax(error_msg, ts), argMax(max_perf, ts), "
                            "argMax(autogroup_id, ts) FROM {db}.heartbeats_raw FINAL "
                            "WHERE tenant = 'acme' GROUP BY worker_id ORDER BY worker_id")
    assert rows == [(501, "", 12.5, 0), (502, "", 7.5, AG)]
    rows = await stack.rows("SELECT worker_id, status, error_kind, count() FROM "
                            "{db}.requests_raw FINAL WHERE tenant = 'acme' "
                            "GROUP BY ALL ORDER BY ALL")
    assert rows == [(501, 200, "", 7), (501, 429, "resource_exhausted", 1 + early[a]),
                    (501, 500, "server", 1), (502, 200, "", 4),
                    (502, 429, "resource_exhausted", 1 + early[b])]
    lat = await stack.rows("SELECT min(latency_ms), max(latency_ms) FROM {db}.requests_raw "
                           "FINAL WHERE status = 200")
    assert 0 < lat[0][0] <= lat[0][1] < 5000

    # the door: an ingest key only reports; a reader key may not report; no key is a 401
    r = await stack.http.post("/get_endpoint_stats/", json={"id": EP, "api_key": token})
    assert r.status_code == 403
    r = await stack.http.post(f"/vast/{EP}/worker_status/", json={"id": 9, "mtoken": reader})
    assert r.status_code == 403 and r.json()["details"]["requiredPermission"] == "ingest"
    r = await stack.http.post(f"/vast/{EP}/worker_status/", json={"id": 9})
    assert r.status_code == 401
    r = await stack.http.post(f"/vast/{EP}/worker_status/",
                              json={"id": 9, "mtoken": token, "max_perf": -1})
    assert r.status_code == 400 and "max_perf" in str(r.json()["details"]["errors_info"])
    r = await stack.http.post("/vast/x/worker_status/", json={"id": 9, "mtoken": token})
    assert r.status_code == 400 and r.json()["details"]["parameter"] == "endpoint_id"
