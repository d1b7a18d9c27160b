"""Signals and restarts of a real `vitals up` process (issue 15, points 3 and 4).

- SIGHUP during start-up and SIGTERM while running a broker that `vitals up` started: the
  process and the JVM are gone within 10 s; a second SIGINT ends it (and the JVM) at once.
- After a kill -9 of `vitals up` its broker is left over: `vitals kafka status` reports it and
  the next `vitals up` adopts it and stops it on exit.
- `vitals up` against a broker that goes away: the stop still takes < 10 s; a second signal
  ends it at once (tests/integration/faults/test_outage.py measures the outage itself).
- kill -9, then restart: `/healthz` and the stats API answer within seconds of the process
  start while the worker still joins its group (`/readyz` says "joining"); `admin.key`
  exists before `/healthz` answers; SIGTERM during that join stops it within 10 s.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pipeline.local.kafka import LocalKafka
from pipeline.local.processes import free_port
from tests.integration.faults.harness import (
    TENANT,
    VitalsProcess,
    names,
    publish,
    workload,
)
from tests.integration.faults.ledger import Ledger, distinct_stored
from tests.integration.kafka_fixture import JAR_CACHE

STOP_BOUND_S = 10.0


def jvms(home: Path) -> list[int]:
    """Pids of live Kafka JVMs whose command line names `home`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"kafka.Kafka" in cmd and str(home).encode() in cmd and state != "Z":
            found.append(int(proc.name))
    return found


def spawn(vp: VitalsProcess) -> None:
    """Start `vitals up` without waiting for it (VitalsProcess.start waits until it serves)."""
    vp.data_dir.mkdir(parents=True, exist_ok=True)
    vp.runs += 1
    with open(vp.log_path, "wb") as log:
        vp.proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "up"],
                                   cwd=vp.env["PYTHONPATH"], env=vp.env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)


async def until(what: str, probe, timeout: float, vp: VitalsProcess) -> float:
    t0 = time.monotonic()
    while not probe():
        assert time.monotonic() - t0 < timeout, f"{what} not within {timeout} s\n{vp.log_tail()}"
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


async def stop_with(vp: VitalsProcess, sig: signal.Signals) -> float:
    assert vp.proc is not None
    t0 = time.monotonic()
    vp.proc.send_signal(sig)
    await vp.wait_exit(STOP_BOUND_S + 20)
    took = time.monotonic() - t0
    assert took < STOP_BOUND_S, f"{sig.name}: {took:.1f} s\n{vp.log_tail()}"
    return took


async def test_signals_stop_vitals_up_and_the_broker_it_started(tmp_path):
    _, topics, db, group = names()
    data = tmp_path / "data"
    vp = VitalsProcess(data, bootstrap="", topics=topics, database=db, group=group,
                       extra_env={"VITALS_STATSD_PORT": "off"})
    home = data / "kafka"
    try:
        # SIGHUP during start-up: the JVM runs, the broker does not answer yet
        spawn(vp)
        await until("the broker JVM", lambda: bool(jvms(home)), 60, vp)
        took_startup = await stop_with(vp, signal.SIGHUP)
        assert jvms(home) == [], vp.log_tail()

        # kill -9: the broker is left over; `vitals kafka status` says so, the next
        # `vitals up` adopts it (and stops it on exit)
        await vp.start()
        (jvm,) = jvms(home)
        assert vp.proc is not None
        crashed = vp.proc.pid
        vp.proc.kill()
        await vp.wait_exit(10)
        status = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "kafka", "status"],
                                cwd=vp.env["PYTHONPATH"], env=vp.env, capture_output=True,
                                text=True, timeout=60)
        assert status.returncode == 0 and f"left over from a `vitals up` (pid {crashed})" in \
            status.stdout, status.stdout + status.stderr
        await vp.start()
        assert jvms(home) == [jvm] and "adopting it" in vp.log_tail(), vp.log_tail()

        # SIGTERM while running (broker up, worker consuming, API serving)
        took_running = await stop_with(vp, signal.SIGTERM)
        assert vp.proc.returncode == 0 and jvms(home) == [], vp.log_tail()
        assert not (home / "owner.json").exists()

        # SIGINT twice while the runtime starts (broker up): the second one ends it at once
        spawn(vp)
        await until("the broker", lambda: "Kafka: " in vp.log_tail(), 60, vp)
        assert vp.proc is not None
        t0 = time.monotonic()
        vp.proc.send_signal(signal.SIGINT)
        await asyncio.sleep(0.3)
        vp.proc.send_signal(signal.SIGINT)
        await vp.wait_exit(STOP_BOUND_S + 20)
        took_twice = time.monotonic() - t0
        assert took_twice < 4.0 and jvms(home) == [], vp.log_tail()
        print(f"\nSIGHUP during start-up: stopped in {took_startup:.1f} s; SIGTERM while "
              f"running: {took_running:.1f} s; SIGINT twice during start-up: "
              f"{took_twice:.1f} s; no JVM left")
    finally:
        await vp.close()
        LocalKafka(home, cache_dir=JAR_CACHE).kill_now()


async def test_kill9_restart_serves_at_once_and_stops_while_joining(tmp_path):
    kafka = LocalKafka(tmp_path / "broker", cache_dir=JAR_CACHE, progress=lambda _m: None)
    info = await asyncio.to_thread(kafka.start, 120.0)
    _, topics, db, group = names()
    port = free_port()
    # the default session timeout: after a kill -9 the group waits this long for the dead member
    vp = VitalsProcess(tmp_path / "data", bootstrap=info.bootstrap, topics=topics, database=db,
                       group=group, extra_env={"VITALS_SESSION_TIMEOUT_S": "45",
                                               "VITALS_API_PORT": str(port),
                                               "VITALS_STATSD_PORT": "off"})
    ledger = Ledger(topics)
    t0, span = int(time.time()) - 400, 300
    try:
        await vp.start()
        requests, heartbeats = workload(300, t0=t0, span_s=span)
        await publish(info.bootstrap, topics, ledger, requests, heartbeats)
        want = {k: len(v) for k, v in ledger.acked.items()}
        await vp.wait_for(lambda: distinct_stored(vp.sql, db), want)
        reader = (await vp.post("/admin/keys", {"tenant": TENANT, "role": "reader"}))["key"]
        query = {"id": 1, "metric_name": "totreqs", "t1": t0 + 30, "t2": t0 + span + 60,
                 "step": 30}
        before = await vp.post("/get_endpoint_stats/", query, key=reader)
        assert sum(before["totreqs"]) > 0
        assert vp.proc is not None
        vp.proc.send_signal(signal.SIGKILL)
        await vp.wait_exit(10)

        started = time.monotonic()
        key_file = vp.data_dir / "admin.key"
        await_task = asyncio.create_task(vp.start())
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                try:
                    healthz = await http.get(url + "/healthz")
                    if healthz.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() - started < 30, vp.log_tail()
                await asyncio.sleep(0.05)
            healthz_s = time.monotonic() - started
            assert key_file.exists()  # written before the API listened
            await await_task
            r = await http.post(url + "/get_endpoint_stats/", json=query,
                                headers={"Authorization": f"Bearer {reader}"})
            stats_s = time.monotonic() - started
            assert r.status_code == 200, r.text
            assert r.json() == before  # every read is served, from what was stored
            ready = await http.get(url + "/readyz")
            agents = {v["state"] for k, v in ready.json()["checks"].items()
                      if k.startswith("agent:")}
            # the group waits up to the session timeout (45 s) for the killed member: the API
            # did not wait for it
            assert healthz_s < 45 and stats_s < 45
            if ready.status_code == 503:
                assert agents == {"joining"}, ready.json()
            else:
                assert agents == {"consuming"}, ready.json()
        took = await stop_with(vp, signal.SIGTERM)  # (usually) while the group still joins
        print(f"\nafter kill -9: /healthz {healthz_s:.1f} s, first stats answer {stats_s:.1f} s "
              f"after the process start (agents then {'/'.join(sorted(agents))}); SIGTERM "
              f"then: stopped in {took:.1f} s")
    finally:
        await vp.close()
        await asyncio.to_thread(kafka.stop)
