"""Past its in-flight limit the API sheds at once (503 OVERLOADED + Retry-After, counted in
/metrics), and `/healthz` and `/readyz` answer while every storage thread is held by slow
queries: readiness comes from memory, its storage probe runs on a lane of its own.

Deterministic: the slow queries (`sleepEachRow`, 3 s each) are still running when the health
answers and the shed answer are asserted; no latency bound is asserted (bench/load.py measures
speed)."""

from __future__ import annotations

import asyncio

import httpx

from pipeline.cli.runtime import Runtime
from pipeline.core.settings import Settings
from pipeline.storage import keys

SLOW = "SELECT sum(sleepEachRow(0.5)) FROM numbers(6)"  # 3 s, the engine's per-block limit
SLOW_QUERIES = 5  # the store's 4 threads busy, one more queued behind them


async def _inflight(http: httpx.AsyncClient) -> float:
    for line in (await http.get("/metrics")).text.splitlines():
        if line.startswith("vitals_api_inflight "):
            return float(line.split()[1])
    return 0.0


async def test_overload_is_shed_and_health_answers_behind_slow_queries(settings: Settings):
    s = settings.with_(api_max_inflight=SLOW_QUERIES)
    rt = Runtime(s, worker=False, statsd=False)
    await rt.start()
    assert rt.store is not None
    admin = await rt.store.call(lambda st: keys.create_key(st, "default", "superadmin"))
    auth = {"Authorization": f"Bearer {admin.key}"}
    async with httpx.AsyncClient(base_url=rt.api_url or "", timeout=30) as http:
        try:
            assert (await http.get("/readyz")).status_code == 200
            slow = [asyncio.create_task(http.post("/sql", headers=auth,
                                                  json={"query": SLOW, "format": "TSV"}))
                    for _ in range(SLOW_QUERIES)]
            while await _inflight(http) < SLOW_QUERIES:
                await asyncio.sleep(0.02)

            shed = await http.post("/get_endpoint_stats/", headers=auth, json={"id": 1})
            assert shed.status_code == 503
            assert shed.headers["retry-after"] == "1"
            assert shed.json() == {
                "error": "OVERLOADED",
                "message": f"the API is serving its limit of {SLOW_QUERIES} requests at once "
                           "(VITALS_API_MAX_INFLIGHT); retry after 1 s",
                "details": {"limit": SLOW_QUERIES, "retryAfter": 1}}

            health = await http.get("/healthz")
            assert (health.status_code, health.json()) == (200, {"status": "ok"})
            # the readiness monitor probes storage every second, with a 2 s timeout: past
            # 2.2 s of saturation a probe queued behind the slow queries would say "down"
            await asyncio.sleep(2.2)
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["storage"]["state"] == "ok"
            assert not any(t.done() for t in slow)  # all of it while the store was held

            metrics = (await http.get("/metrics")).text
            assert "vitals_api_shed_total 1\n" in metrics
            assert f"vitals_api_inflight {SLOW_QUERIES}\n" in metrics

            answers = await asyncio.gather(*slow)
            assert [(a.status_code, a.text) for a in answers] == [(200, "0\n")] * SLOW_QUERIES
            assert await _inflight(http) == 0
            after = await http.post("/get_endpoint_stats/", headers=auth, json={"id": 1})
            assert (after.status_code, after.json()["error"]) == (404, "NOT_FOUND")
        finally:
            await rt.stop()
