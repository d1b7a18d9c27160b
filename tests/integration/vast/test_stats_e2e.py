"""A deterministic workload through Kafka, the faust worker and ClickHouse; every stats field
and timeseries value is compared exactly with ground truth computed from the events sent."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from pipeline.core.clock import ManualClock

# The latest full hour + 20 min 34.5 s: recent, so within the tables' retention (TTL).
NOW = (int(time.time()) // 3600 - 1) * 3600 + 1234.5
T_NOW = int(NOW)
WINDOW = 60
LIVENESS = 60


def workload() -> tuple[list[dict], list[dict]]:
    rng = random.Random(42)
    requests: list[dict] = []
    # endpoint 11 "llm-a", autogroups 101/102, over the last 15 minutes
    for sec in range(T_NOW - 900, T_NOW):
        for ag, n in ((101, sec % 5 + 1), (102, 2)):
            for j in range(n):
                status = 200
                kind = ""
                if (sec + j) % 7 == 0:
                    status = 503
                elif (sec + j) % 11 == 0:
                    status = 429
                elif (sec + j) % 13 == 0:
                    status, kind = 200, "timeout"
                e = {"v": 1, "type": "request", "ts": sec + rng.random() * 0.999,
                     "endpoint_id": 11, "endpoint": "llm-a", "autogroup_id": ag,
                     "worker_id": ag * 10 + j % 2, "status": status,
                     "latency_ms": rng.uniform(5, 500), "work_units": float(1 + j % 3),
                     "tokens_in": 10 + j, "tokens_out": 20}
                if kind:
                    e["error_kind"] = kind
                requests.append(e)
    # older traffic: two hours back, in ms timestamps, to exercise the 1h/1m rollups
    for i in range(500):
        requests.append({"v": 1, "type": "request", "ts": (T_NOW - 7200 + i * 7) * 1000 + 250,
                         "endpoint_id": 11, "autogroup_id": 101, "status": 200,
                         "latency_ms": 42.0})
    # endpoint 12 of the same tenant and endpoint 99 of another tenant must not leak in
    for i in range(50):
        requests.append({"v": 1, "type": "request", "ts": T_NOW - 30 + i * 0.1,
                         "endpoint_id": 12, "endpoint": "llm-b", "status": 500})
        requests.append({"v": 1, "type": "request", "ts": T_NOW - 30 + i * 0.1,
                         "tenant": "other", "endpoint_id": 99, "endpoint": "theirs",
                         "status": 200})
    for e in requests:
        e.setdefault("tenant", "acme")
    heartbeats: list[dict] = []
    # workers 1-3 heartbeat every 10 s throughout; worker 4 stops 90 s ago; worker 5 joins 30 s ago
    plan = {1: (101, 100.0, T_NOW - 900, T_NOW), 2: (101, 150.0, T_NOW - 900, T_NOW),
            3: (102, 80.0, T_NOW - 900, T_NOW), 4: (102, 60.0, T_NOW - 900, T_NOW - 90),
            5: (101, 40.0, T_NOW - 30, T_NOW)}
    for worker, (ag, perf, start, stop) in plan.items():
        for t in range(start, stop, 10):
            heartbeats.append({"v": 1, "type": "heartbeat", "ts": t + 0.5, "tenant": "acme",
                               "endpoint_id": 11, "autogroup_id": ag, "id": worker,
                               "max_perf": perf, "cur_load": 1.0, "num_requests_working": 1})
    return requests, heartbeats


def ok(e: dict) -> bool:
    return e["status"] < 400 and not e.get("error_kind")


def sec(e: dict) -> float:
    ts = e["ts"]
    return ts / 1000 if ts > 1e11 else ts


def truth(requests, heartbeats, t, *, ep=11, ag=None, metric):
    reqs = [e for e in requests if e["tenant"] == "acme" and e["endpoint_id"] == ep
            and (ag is None or e.get("autogroup_id", 0) == ag)]
    win = [e for e in reqs if t - WINDOW <= sec(e) < t]
    if metric == "totreqs":
        return float(sum(1 for e in reqs if sec(e) < t))
    if metric == "reqrate":
        return len(win) / WINDOW
    if metric == "curload":
        return sum(e.get("work_units", 1) for e in win) / WINDOW
    if metric == "reliable":
        return sum(1 for e in win if ok(e)) / len(win) if win else None
    hbs = [h for h in heartbeats
           if h["endpoint_id"] == ep and (ag is None or h["autogroup_id"] == ag)]
    latest: dict[int, dict] = {}
    for h in sorted(hbs, key=lambda h: h["ts"]):
        if h["ts"] <= t:
            latest[h["id"]] = h
    live = [h for h in latest.values() if h["ts"] > t - LIVENESS]
    if metric == "nworkers":
        return float(len(live))
    return float(sum(h["max_perf"] for h in live))


@pytest.fixture
async def loaded(stack_factory):
    stack = await stack_factory(clock=ManualClock(NOW))
    requests, heartbeats = workload()
    await stack.ingest(requests, heartbeats, ManualClock(NOW))
    key = await stack.key("acme", "reader")
    return stack, key, requests, heartbeats


async def test_current_endpoint_stats_exact(loaded):
    stack, key, requests, heartbeats = loaded
    r = await stack.http.post("/get_endpoint_stats/", json={"id": 11, "api_key": key})
    assert r.status_code == 200, r.text
    body = r.json()
    total = sum(1 for e in requests if e["tenant"] == "acme" and e["endpoint_id"] == 11)
    assert body == {
        "capacity": truth(requests, heartbeats, NOW, metric="capacity"),
        "curload": truth(requests, heartbeats, T_NOW, metric="curload"),
        "endpoint": "llm-a",
        "id": 11,
        "nworkers": int(truth(requests, heartbeats, NOW, metric="nworkers")),
        "reliable": truth(requests, heartbeats, T_NOW, metric="reliable"),
        "reqrate": truth(requests, heartbeats, T_NOW, metric="reqrate"),
        "totreqs": total,
    }
    assert body["nworkers"] == 4 and body["capacity"] == 100 + 150 + 80 + 40
    assert body["totreqs"] == 500 + sum(s % 5 + 1 + 2 for s in range(T_NOW - 900, T_NOW))
    # by name, with the key as a Bearer header instead of in the body
    r2 = await stack.http.post("/get_endpoint_stats/", json={"endpoint": "llm-a"},
                               headers={"Authorization": f"Bearer {key}"})
    assert r2.json() == body


async def test_current_autogroup_stats_exact(loaded):
    stack, key, requests, heartbeats = loaded
    for ag in (101, 102):
        r = await stack.http.post("/get_autogroup_stats/", json={"id": ag, "api_key": key})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["id"] == ag and body["endpoint"] == "llm-a"
        assert body["nworkers"] == truth(requests, heartbeats, NOW, ag=ag, metric="nworkers")
        assert body["capacity"] == truth(requests, heartbeats, NOW, ag=ag, metric="capacity")
        for m in ("reqrate", "curload", "reliable"):
            assert body[m] == truth(requests, heartbeats, T_NOW, ag=ag, metric=m), m
        assert body["totreqs"] == truth(requests, heartbeats, T_NOW + 1, ag=ag, metric="totreqs")


@pytest.mark.parametrize("metric", ["nworkers", "totreqs", "curload", "capacity", "reliable",
                                    "reqrate"])
@pytest.mark.parametrize("t1,t2,step", [(T_NOW - 300, T_NOW, 7), (T_NOW - 3000, T_NOW, 60)])
async def test_timeseries_exact(loaded, metric, t1, t2, step):
    stack, key, requests, heartbeats = loaded
    r = await stack.http.post("/get_endpoint_stats/", json={
        "id": 11, "api_key": key, "metric_name": metric, "t1": t1, "t2": t2, "step": step})
    assert r.status_code == 200, r.text
    body = r.json()
    points = list(range(t1, t2, step))
    assert body["range_len"] == len(points)
    assert body[metric] == [truth(requests, heartbeats, p, metric=metric) for p in points]


async def test_timeseries_default_step_matches_vast_example(loaded):
    stack, key, *_ = loaded
    r = await stack.http.post("/get_autogroup_stats/", json={
        "id": 101, "api_key": key, "metric_name": "nworkers", "t1": T_NOW - 10, "t2": T_NOW})
    assert r.json() == {"endpoint": "llm-a", "id": 101, "nworkers": [3.0, 3.0], "range_len": 2}


async def test_redelivery_does_not_double_count(loaded):
    """A second consumer group re-reads every message into the same tables: nothing changes,
    also once the hours are compacted."""
    stack, key, requests, _ = loaded
    before = (await stack.http.post("/get_endpoint_stats/", json={"id": 11, "api_key": key})).json()
    from pipeline.cli.runtime import Runtime
    from pipeline.core.clock import row_version
    from pipeline.ingest import compaction

    assert stack.rt.store is not None
    await stack.rt.store.call(lambda s: compaction.compact(s, "requests_1h", T_NOW - 86400,
                                                           T_NOW + 3600, row_version(time.time())))
    merged = await stack.rows("SELECT count() FROM {db}.requests_1h_merged FINAL "
                              "WHERE endpoint_id = 11")
    assert merged == [(3,)]  # the older traffic spans two hours, the last 15 minutes one
    compacted = (await stack.http.post("/get_endpoint_stats/",
                                       json={"id": 11, "api_key": key})).json()
    assert compacted == before
    replay = Runtime(stack.settings.with_(consumer_group=stack.settings.consumer_group + "-replay",
                                          compact_interval_s=0),
                     api=False, clock=ManualClock(NOW))
    await replay.start()
    try:
        await stack.wait_for(
            lambda: stack.rows("SELECT count() FROM {db}.requests_raw"), [(2 * len(requests),)])
    finally:
        await replay.stop()
    assert (await stack.rows("SELECT count() FROM {db}.requests_raw FINAL")) == [(len(requests),)]
    after = (await stack.http.post("/get_endpoint_stats/", json={"id": 11, "api_key": key})).json()
    assert after == before


def current_truth(requests, heartbeats, t, *, ep=11):
    return {"capacity": truth(requests, heartbeats, t, ep=ep, metric="capacity"),
            "curload": truth(requests, heartbeats, int(t), ep=ep, metric="curload"),
            "nworkers": int(truth(requests, heartbeats, t, ep=ep, metric="nworkers")),
            "reliable": truth(requests, heartbeats, int(t), ep=ep, metric="reliable"),
            "reqrate": truth(requests, heartbeats, int(t), ep=ep, metric="reqrate"),
            "totreqs": sum(1 for e in requests if e["tenant"] == "acme"
                           and e["endpoint_id"] == ep)}


async def test_shared_reads_exact_per_scope_params_and_instant(loaded):
    """Identical concurrent calls are computed once; each scope, tenant, parameter set and
    instant gets its own exact answer (README: shared reads)."""
    stack, key, requests, heartbeats = loaded
    ctx = stack.rt.api_app.state.ctx
    ctx.reads.fresh_s = 60.0  # a wide bound, so that the counts below do not depend on speed
    other = await stack.key("other", "reader")
    tel = stack.rt.telemetry

    def computed(cache):
        return tel.value("vitals_api_read_cache_total", cache=cache, outcome="computed")

    async def stats(body, k=key):
        r = await stack.http.post("/get_endpoint_stats/", json={**body, "api_key": k})
        return r.status_code, r.json()

    calls = [stats({"id": ep}) for ep in (11, 12) for _ in range(8)]
    answers = await asyncio.gather(*calls, stats({"id": 99}, other), stats({"id": 11}, other))
    for ep, got in ((11, answers[:8]), (12, answers[8:16])):
        name = {11: "llm-a", 12: "llm-b"}[ep]
        assert got == [(200, {**current_truth(requests, heartbeats, NOW, ep=ep),
                              "endpoint": name, "id": ep})] * 8
    assert answers[16][0] == 200 and answers[16][1]["totreqs"] == 50  # the other tenant's own
    assert answers[17][0] == 403  # and never acme's endpoint, cached or not
    assert computed("stats") == 3

    series = [stats({"id": 11, "metric_name": "reqrate", "t1": T_NOW - 300, "t2": T_NOW,
                     "step": step}) for step in (7, 7, 7, 30)]
    got = await asyncio.gather(*series)
    for (status, body), step in zip(got, (7, 7, 7, 30), strict=True):
        assert status == 200
        assert body["reqrate"] == [truth(requests, heartbeats, p, metric="reqrate")
                                   for p in range(T_NOW - 300, T_NOW, step)]
    assert computed("stats_series") == 2

    # the clock moves: an earlier instant, or one past the bound, is computed for itself
    for at in (NOW - 30.25, NOW + 90.75):
        stack.rt.clock.t = at
        assert await stats({"id": 11}) == (200, {**current_truth(requests, heartbeats, at),
                                                 "endpoint": "llm-a", "id": 11})
    assert computed("stats") == 5
