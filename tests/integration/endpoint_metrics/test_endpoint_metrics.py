"""Endpoint metrics over a deterministic workload sent through Kafka, the faust worker and
ClickHouse: summary, series, percentiles (within the 2% bound against exact quantiles), error
breakdown, cold starts, costs, budget and scaling events are checked against ground truth
computed here from the events sent; CSV is parsed back with `csv`; Prometheus text must pass
the real `promtool check metrics` and is then read with prometheus_client's parser."""

from __future__ import annotations

import asyncio
import calendar
import csv
import io
import math
import random
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.core.clock import ManualClock, row_version
from pipeline.sdk.producer import Producer
from query_api.endpoint_metrics.sections import iso
from tests.promtool import check_metrics

NOW = (int(time.time()) // 3600 - 1) * 3600 + 1234.5
T = int(NOW)
HOUR = T // 3600 * 3600
EP, NAME = 21, 'llm "m", west'
LIVENESS = 60
PRICES = {"gpuSecondPrice": 0.001, "requestPrice": 0.0001, "gbTransferredPrice": 0.09,
          "monthlyBudget": 50.0}
BOUND = 0.02  # documented relative error bound of percentiles


def workload() -> tuple[list[dict], list[dict]]:
    rng = random.Random(7)
    requests: list[dict] = []
    i = 0
    for sec in range(T - 7200, T):
        for j in range(1 + sec % 3):
            i += 1
            status, kind = 200, ""
            if i % 17 == 0:
                status = 503
            elif i % 19 == 0:
                status = 404
            elif i % 23 == 0:
                kind = "timeout"
            elif i % 29 == 0:
                status, kind = 503, "resource_exhausted"
            lat = rng.lognormvariate(5, 0.6)
            e = {"v": 1, "type": "request", "ts": sec + rng.random() * 0.999, "tenant": "acme",
                 "endpoint_id": EP, "endpoint": NAME, "autogroup_id": 201,
                 "worker_id": 1 + i % 2, "status": status, "latency_ms": lat,
                 "queue_ms": rng.uniform(0, 50), "work_units": float(1 + j),
                 "tokens_in": 10 + j, "tokens_out": 30, "gpu_seconds": lat / 1000 * 0.8,
                 "bytes_out": 1000 + (i % 50) * 100}
            if kind:
                e["error_kind"] = kind
            e["bytes_in"] = 200 + i % 7  # the optional input size and cache outcome
            if i % 5 < 2:
                e["cache"] = "hit" if i % 5 == 0 else "miss"
            if i % 97 == 0:
                e["cold_start"] = True
                e["cold_start_ms"] = 2000.0 + i % 1000
            requests.append(e)
    for k in range(20):  # another tenant's endpoint: never leaks in, 403 for acme
        requests.append({"v": 1, "type": "request", "ts": T - 100 + k, "tenant": "rival",
                         "endpoint_id": 22, "endpoint": "theirs", "status": 200,
                         "latency_ms": 5.0})
    heartbeats: list[dict] = []
    # worker 3 has two sessions: its heartbeats stop for longer than the liveness timeout
    plan = [(1, T - 7200, T, 50.0, 40.0, 10.0), (2, T - 7200, T, 70.0, 60.0, 20.0),
            (3, T - 2500, T - 2000, 90.0, 80.0, 30.0), (3, T - 1500, T - 600, 90.0, 80.0, 30.0),
            (4, T - 300, T, 30.0, 20.0, 40.0)]
    for w, a, b, gpu, mem, cpu in plan:
        for t in range(a, b, 10):
            hb = {"v": 1, "type": "heartbeat", "ts": t + 0.5, "tenant": "acme",
                  "endpoint_id": EP, "endpoint": NAME, "autogroup_id": 201, "id": w,
                  "max_perf": 10.0, "gpu_util": gpu, "gpu_mem_util": mem, "cpu_util": cpu}
            if w in (1, 2):  # the optional GPU figures: only workers 1 and 2 report them
                hb["gpu_temp_c"] = 60.0 + w + (t % 20) / 10
                hb["gpu_mem_total_bytes"] = 40 * 2**30
            heartbeats.append(hb)
    return requests, heartbeats


def window(step: int, span: int) -> tuple[int, int]:
    end = (T // step + 1) * step
    return end - span, end


def mine(requests, lo, hi):
    return [e for e in requests if e["tenant"] == "acme" and e["endpoint_id"] == EP
            and lo <= e["ts"] < hi]


def failed(e):
    return e["status"] >= 400 or bool(e.get("error_kind"))


def exact_q(values, q):
    s = sorted(values)
    return s[max(1, math.ceil(q * len(s))) - 1]


def cost(events):
    return sum(e["gpu_seconds"] * PRICES["gpuSecondPrice"] + PRICES["requestPrice"]
               + e["bytes_out"] / 1e9 * PRICES["gbTransferredPrice"] for e in events)


def classes(events):
    out = {"4xx": 0, "5xx": 0, "timeouts": 0, "resourceExhausted": 0, "other": 0}
    for e in events:
        kind = e.get("error_kind", "")
        if kind == "timeout":
            out["timeouts"] += 1
        elif kind == "resource_exhausted":
            out["resourceExhausted"] += 1
        elif e["status"] >= 500:
            out["5xx"] += 1
        elif e["status"] >= 400:
            out["4xx"] += 1
    return out


def sessions(heartbeats):
    """Per worker: merged [hb, hb + L) intervals (ground truth of liveness)."""
    out = []
    for w in sorted({h["id"] for h in heartbeats}):
        ts = sorted(h["ts"] for h in heartbeats if h["id"] == w)
        a, b = ts[0], ts[0] + LIVENESS
        for t in ts[1:]:
            if t <= b:
                b = t + LIVENESS
            else:
                out.append((w, a, b))
                a, b = t, t + LIVENESS
        out.append((w, a, b))
    return out


@pytest.fixture
async def loaded(stack_factory):
    clock = ManualClock(NOW)
    stack = await stack_factory(clock=clock, metrics_rate_limit=1000)
    requests, heartbeats = workload()
    await stack.ingest(requests, heartbeats, ManualClock(NOW))
    admin = await stack.key("acme", "admin")
    r = await stack.http.put(f"/v2/endpoints/{EP}/pricing", json=PRICES,
                             headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 200, r.text
    reader = await stack.key("acme", "reader")
    return stack, clock, reader, requests, heartbeats


def get(stack, key, path=f"/v2/endpoints/{EP}/metrics", **params):
    return stack.http.get(path, params=params, headers={"Authorization": f"Bearer {key}"})


async def test_summary_series_percentiles_errors_cold_starts(loaded):
    stack, _, key, requests, _ = loaded
    r = await get(stack, key, timeframe="1h", granularity="5m", metrics="performance,errors")
    assert r.status_code == 200, r.text
    doc = r.json()
    start, end = window(300, 3600)
    ev = mine(requests, start, end)
    lat = [e["latency_ms"] for e in ev]
    bad = [e for e in ev if failed(e)]
    cold = [e for e in ev if e.get("cold_start")]
    s = doc["summary"]
    assert doc["endpointId"] == str(EP) and doc["endpoint"] == NAME
    # the reference's four simple fields: workers 1, 2 and 4 heartbeat until T (3 live)
    assert doc["requestCount"] == len(ev)
    assert doc["averageResponseTime"] == pytest.approx(sum(lat) / len(lat) / 1000, rel=1e-9)
    assert doc["errorRate"] == pytest.approx(100 * len(bad) / len(ev))
    assert doc["activeWorkers"] == 3
    assert doc["generatedAt"] == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(T)) + ".500Z"
    assert s["totalExecutions"] == len(ev) and s["failedExecutions"] == len(bad)
    assert s["successfulExecutions"] == len(ev) - len(bad)
    assert s["successRate"] == pytest.approx(100 * (len(ev) - len(bad)) / len(ev))
    assert s["averageLatency"] == pytest.approx(sum(lat) / len(lat) / 1000, rel=1e-9)
    assert s["totalComputeTime"] == pytest.approx(sum(lat) / 1000, rel=1e-9)
    assert s["averageQueueTime"] == pytest.approx(
        sum(e["queue_ms"] for e in ev) / len(ev) / 1000, rel=1e-9)
    for q, name in ((0.5, "p50Latency"), (0.95, "p95Latency"), (0.99, "p99Latency")):
        assert s[name] == pytest.approx(exact_q(lat, q) / 1000, rel=BOUND), name
    assert s["coldStartCount"] == len(cold) > 0
    # insights read off the same data: the error rate is far above 5%
    rate = 100 * len(bad) / len(ev)
    assert rate > 10
    found = {i["type"]: i for i in doc["insights"]["performance"]}
    assert found["error_rate"]["severity"] == "high"
    assert found["error_rate"]["message"] == f"{rate:.2f}% of requests failed"
    assert doc["insights"]["costs"] == doc["insights"]["usage"] == []  # sections not asked
    assert s["coldStartRate"] == pytest.approx(100 * len(cold) / len(ev))
    # a superadmin of another tenant reads the owner's numbers (the document computed for its
    # own tenant while the endpoint is resolved is dropped); the rival tenant gets 403
    admin = await stack.key("ops", "superadmin")
    r2 = await get(stack, admin, timeframe="1h", granularity="5m", metrics="performance,errors")
    assert r2.status_code == 200, r2.text
    assert r2.json()["summary"] == s and r2.json()["endpoint"] == NAME
    r3 = await get(stack, await stack.key("rival", "admin"), timeframe="1h", granularity="5m")
    assert r3.status_code == 403 and r3.json()["error"] == "INSUFFICIENT_PERMISSIONS"
    perf = doc["performance"]
    series = perf["latency"]["timeSeries"]
    assert len(series) == 12
    for k, point in enumerate(series):
        pe = mine(requests, start + 300 * k, start + 300 * (k + 1))
        assert point["count"] == len(pe)
        if not pe:
            assert point["avg"] is None and point["p95"] is None
            continue
        pl = [e["latency_ms"] / 1000 for e in pe]
        assert point["avg"] == pytest.approx(sum(pl) / len(pl), rel=1e-9)
        assert point["value"] == point["avg"]
        assert point["min"] == pytest.approx(min(pl)) and point["max"] == pytest.approx(max(pl))
        for q in (0.5, 0.95, 0.99):
            assert point[f"p{round(q * 100)}"] == pytest.approx(exact_q(pl, q), rel=BOUND)
    thr = perf["throughput"]["timeSeries"]
    assert [p["requestsPerSecond"] for p in thr] == [
        len(mine(requests, start + 300 * k, start + 300 * (k + 1))) / 300 for k in range(12)]
    errs = perf["errorRates"]
    assert errs["breakdown"] == classes(ev)
    assert sum(errs["breakdown"].values()) == len(bad)
    for k, point in enumerate(errs["timeSeries"]):
        pe = mine(requests, start + 300 * k, start + 300 * (k + 1))
        assert point["errors"] == sum(1 for e in pe if failed(e))
    assert "coldStarts" in doc
    cs = doc["coldStarts"]
    assert cs["count"] == len(cold)
    assert cs["averageDuration"] == pytest.approx(
        sum(e["cold_start_ms"] for e in cold) / len(cold) / 1000)
    # hourly trend: the last complete hour against the hour before, from the 1h rollup
    hourly = perf["latency"]["trends"]["hourly"]
    last = [e["latency_ms"] for e in mine(requests, HOUR - 3600, HOUR)]
    prev = [e["latency_ms"] for e in mine(requests, HOUR - 7200, HOUR - 3600)]
    a, b = sum(last) / len(last) / 1000, sum(prev) / len(prev) / 1000
    assert hourly["average"] == pytest.approx(a, rel=1e-9)
    assert hourly["changePercent"] == pytest.approx(100 * (a - b) / b, rel=1e-6)
    assert hourly["trend"] == ("stable" if abs(100 * (a - b) / b) < 5
                               else "degrading" if a > b else "improving")
    assert perf["latency"]["trends"]["daily"]["trend"] is None  # no earlier day of data
    # 1m points are single rollup buckets (the path that reads per-bucket rows directly)
    r = await get(stack, key, timeframe="1h", granularity="1m", metrics="performance")
    doc1 = r.json()
    start1, end1 = window(60, 3600)
    ev1 = mine(requests, start1, end1)
    lat1 = [e["latency_ms"] / 1000 for e in ev1]
    assert doc1["summary"]["totalExecutions"] == len(ev1)
    assert doc1["summary"]["p99Latency"] == pytest.approx(exact_q(lat1, 0.99), rel=BOUND)
    assert doc1["summary"]["averageLatency"] == pytest.approx(sum(lat1) / len(lat1), rel=1e-9)
    for k, point in enumerate(doc1["performance"]["latency"]["timeSeries"]):
        pl = [e["latency_ms"] / 1000 for e in mine(requests, start1 + 60 * k,
                                                   start1 + 60 * (k + 1))]
        assert point["count"] == len(pl)
        if pl:
            assert point["p95"] == pytest.approx(exact_q(pl, 0.95), rel=BOUND)
            assert point["min"] == pytest.approx(min(pl))
    # the other tenant's endpoint never leaks in, and a 30d window at default granularity
    r = await get(stack, key, timeframe="30d")
    assert r.status_code == 200 and r.json()["granularity"] == "1h"
    assert r.json()["summary"]["totalExecutions"] == len(mine(requests, 0, 2**40))


async def test_costs_budget_resources_scaling(loaded):
    stack, _, key, requests, heartbeats = loaded
    r = await get(stack, key, timeframe="1h", granularity="5m",
                  metrics="costs,resources,usage")
    assert r.status_code == 200, r.text
    doc = r.json()
    start, end = window(300, 3600)
    ev = mine(requests, start, end)
    c = doc["costs"]
    assert c["pricing"]["configured"] and c["pricing"]["monthlyBudget"] == 50.0
    assert c["total"] == pytest.approx(cost(ev), rel=1e-9)
    assert doc["summary"]["totalCost"] == pytest.approx(cost(ev), rel=1e-9)
    bd = c["breakdown"]
    assert bd["requests"]["amount"] == pytest.approx(len(ev) * PRICES["requestPrice"])
    assert bd["requests"]["details"]["requests"] == len(ev)
    assert bd["network"]["amount"] == pytest.approx(
        sum(e["bytes_out"] for e in ev) / 1e9 * PRICES["gbTransferredPrice"])
    gpu_s = sum(e["gpu_seconds"] for e in ev)
    assert bd["compute"]["amount"] == pytest.approx(gpu_s * PRICES["gpuSecondPrice"])
    assert bd["compute"]["details"]["gpuHours"] == pytest.approx(gpu_s / 3600, rel=1e-9)
    assert sum(v["percentage"] for v in bd.values()) == pytest.approx(100)
    assert bd["network"]["percentage"] == pytest.approx(100 * bd["network"]["amount"] / c["total"])
    assert [p["cost"] for p in c["timeSeries"]] == pytest.approx(
        [cost(mine(requests, start + 300 * k, start + 300 * (k + 1))) for k in range(12)])
    tm = time.gmtime(T)
    m0 = calendar.timegm((tm.tm_year, tm.tm_mon, 1, 0, 0, 0))
    m1 = m0 + calendar.monthrange(tm.tm_year, tm.tm_mon)[1] * 86400
    used = cost(mine(requests, m0, NOW))
    b = c["budgetAnalysis"]
    assert b["currentUsage"] == pytest.approx(used, rel=1e-9)
    assert b["remainingBudget"] == pytest.approx(50.0 - used, rel=1e-9)
    assert b["projectedTotal"] == pytest.approx(used / (NOW - m0) * (m1 - m0), rel=1e-9)
    assert b["onTrack"] == (b["projectedTotal"] <= 50.0)
    assert b["burnRate"] == pytest.approx(used / ((NOW - m0) / 86400), rel=1e-9)
    rules = {s["category"]: s for s in c["optimization"]["suggestions"]}
    cold = [e for e in ev if e.get("cold_start")]
    assert 100 * len(cold) / len(ev) > 1  # so the cold-start rule fires
    assert rules["cold_starts"]["rule"].startswith("coldStartRate > 1")
    assert rules["cold_starts"]["savings"] == pytest.approx(
        sum(e["cold_start_ms"] for e in cold) / 1000 * PRICES["gpuSecondPrice"])
    assert 100 * sum(1 for e in ev if failed(e)) / len(ev) > 5
    assert rules["failed_requests"]["savings"] == pytest.approx(
        sum(1 for e in ev if failed(e)) / len(ev) * cost(ev), rel=1e-9)
    assert c["optimization"]["potentialSavings"] == pytest.approx(
        sum(s["savings"] for s in rules.values()))
    recs = c["optimization"]["recommendations"]
    assert [(x["category"], x["savings"]) for x in recs] == [
        (x["category"], x["savings"]) for x in c["optimization"]["suggestions"]]
    assert all(x["implementation"] for x in recs)
    # resources: heartbeat averages and peaks, scaling events from the live worker count
    res = doc["resources"]
    hb = [h for h in heartbeats if start <= h["ts"] < end]
    assert res["heartbeatSamples"] == len(hb)
    assert res["gpu"]["utilization"]["average"] == pytest.approx(
        sum(h["gpu_util"] for h in hb) / len(hb))
    assert res["gpu"]["utilization"]["peak"] == 90.0
    assert res["gpu"]["memory"]["peak"] == 80.0 and res["cpu"]["utilization"]["peak"] == 40.0
    warm = [h["gpu_temp_c"] for h in hb if "gpu_temp_c" in h]
    assert res["gpu"]["temperature"]["average"] == pytest.approx(sum(warm) / len(warm))
    assert res["gpu"]["temperature"]["peak"] == pytest.approx(max(warm))
    assert res["gpu"]["memory"]["allocatedBytes"] == 80 * 2**30
    assert res["gpu"]["memory"]["allocated"] == "80GB"
    for k, point in enumerate(res["gpu"]["utilization"]["timeSeries"]):
        ph = [h for h in hb if start + 300 * k <= h["ts"] < start + 300 * (k + 1)]
        assert point["utilization"] == pytest.approx(sum(h["gpu_util"] for h in ph) / len(ph))
        pw = [h["gpu_temp_c"] for h in ph if "gpu_temp_c" in h]
        assert point["temperature"] == pytest.approx(sum(pw) / len(pw))
    sc = res["scaling"]
    assert [(e["action"], e["from"], e["to"], e["timestamp"]) for e in sc["events"]] == [
        ("scale_up", 2, 3, _iso(T - 2500 + 0.5)),
        ("scale_down", 3, 2, _iso(T - 2010 + 0.5 + LIVENESS)),
        ("scale_up", 2, 3, _iso(T - 1500 + 0.5)),
        ("scale_down", 3, 2, _iso(T - 610 + 0.5 + LIVENESS)),
        ("scale_up", 2, 3, _iso(T - 300 + 0.5)),
    ]
    assert sc["currentInstances"] == 3 and sc["peakInstances"] == 3
    # the vast.ai autoscaler's rule: load of the last 60 s at 90% of 10 units/s per worker
    load = sum(e["work_units"] for e in mine(requests, T - 60, T)) / 60
    assert sc["targetRule"]["load"] == pytest.approx(load, rel=1e-9)
    assert sc["targetRule"]["capacity"] == 30.0 and sc["autoScalingEnabled"] is False
    assert sc["targetInstances"] == math.ceil(load / 0.9 / 10)
    starts = [e["timestamp"] for e in sc["events"]]
    stamps = [calendar.timegm(time.strptime(x[:19], "%Y-%m-%dT%H:%M:%S")) + (
        0.5 if ".500" in x else 0) for x in starts]
    assert [e["duration"] for e in sc["events"]] == pytest.approx(
        [b_ - a for a, b_ in zip(stamps, [*stamps[1:], NOW], strict=True)])
    live = sum(max(0.0, min(b_, NOW) - max(a, start)) for _, a, b_ in sessions(heartbeats))
    assert sc["workerSeconds"] == pytest.approx(live)
    u = doc["usage"]["compute"]
    busy = sum(e["latency_ms"] for e in ev) / 1000
    assert u["workerSeconds"] == pytest.approx(live)
    assert u["idleTime"] == pytest.approx(live - busy)
    assert u["utilizationRate"] == pytest.approx(100 * busy / live)
    data = doc["usage"]["data"]
    hits = sum(1 for e in ev if e.get("cache") == "hit")
    misses = sum(1 for e in ev if e.get("cache") == "miss")
    assert data["inputBytes"] == sum(e["bytes_in"] for e in ev)
    assert (data["cacheHits"], data["cacheMisses"]) == (hits, misses)
    assert data["cacheHitRate"] == pytest.approx(100 * hits / (hits + misses))
    assert data["bandwidth"]["ingress"].endswith("/hour")
    by_hour = doc["usage"]["requests"]["byHour"]
    assert sum(h["count"] for h in by_hour) == len(ev)
    # aggregation=max: per-point resource values become the max sample of the bucket
    r = await get(stack, key, timeframe="1h", granularity="5m", metrics="resources",
                  aggregation="max")
    last_point = r.json()["resources"]["gpu"]["utilization"]["timeSeries"][-1]
    assert last_point["utilization"] == 70.0 and last_point["instances"] == 3


def _iso(ts: float) -> str:
    whole = int(ts)
    ms = round((ts - whole) * 1000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{text}.{ms:03d}Z" if ms else f"{text}Z"


async def test_csv_and_prometheus_formats(loaded):
    stack, _, key, requests, _ = loaded
    start, end = window(300, 3600)
    r = await get(stack, key, timeframe="1h", granularity="5m", format="csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "\r\n" in r.text
    rows = list(csv.reader(io.StringIO(r.text, newline="")))
    header, body = rows[0], rows[1:]
    assert len(header) == len(set(header)), header
    assert len(body) == 12 and header[:4] == ["timestamp", "endpoint_id", "endpoint", "requests"]
    assert {row[2] for row in body} == {NAME}  # quotes and comma survive RFC 4180 quoting
    for k, row in enumerate(body):
        rec = dict(zip(header, row, strict=True))
        pe = mine(requests, start + 300 * k, start + 300 * (k + 1))
        assert int(rec["requests"]) == len(pe)
        assert int(rec["failures"]) == sum(1 for e in pe if failed(e))
        if pe:
            assert float(rec["latency_avg_s"]) == pytest.approx(
                sum(e["latency_ms"] for e in pe) / len(pe) / 1000, rel=1e-9)
            assert float(rec["cost"]) == pytest.approx(cost(pe), rel=1e-9)
    for agg in ("avg", "sum", "min", "max", "p95", "p99"):  # unique headers whatever it is
        r = await get(stack, key, timeframe="1h", granularity="5m", format="csv",
                      aggregation=agg)
        header = next(csv.reader(io.StringIO(r.text, newline="")))
        assert len(header) == len(set(header)), (agg, header)
    r = await get(stack, key, timeframe="1h", granularity="5m", format="prometheus")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    check_metrics(r.text)
    for sections in ("performance", "errors", "costs", "usage", "resources"):
        r2 = await get(stack, key, timeframe="1h", granularity="5m", format="prometheus",
                       metrics=sections)
        check_metrics(r2.text)
    check_metrics((await stack.http.get("/metrics")).text)  # the pipeline's own, after load
    fams = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert all(name.startswith("vitals_endpoint_") for name in fams)
    ev = mine(requests, start, end)
    bad = sum(1 for e in ev if failed(e))
    req = {s.labels["status"]: s.value for s in fams["vitals_endpoint_requests"].samples}
    assert fams["vitals_endpoint_requests"].type == "counter"
    assert req == {"success": len(ev) - bad, "error": bad}
    hist = fams["vitals_endpoint_latency_seconds"]
    assert hist.type == "histogram"
    buckets = [(s.labels["le"], s.value) for s in hist.samples if s.name.endswith("_bucket")]
    assert buckets[-1] == ("+Inf", len(ev))
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    by_name = {s.name: s.value for s in hist.samples if not s.name.endswith("_bucket")}
    assert by_name["vitals_endpoint_latency_seconds_count"] == len(ev)
    assert by_name["vitals_endpoint_latency_seconds_sum"] == pytest.approx(
        sum(e["latency_ms"] for e in ev) / 1000, rel=1e-9)
    le_1 = dict(buckets)["0.25"]
    exact = sum(1 for e in ev if e["latency_ms"] <= 250)
    assert abs(le_1 - exact) <= sum(1 for e in ev if 250 / 1.02 < e["latency_ms"] <= 250 * 1.02)
    assert fams["vitals_endpoint_workers"].samples[0].value == 3
    assert fams["vitals_endpoint_cost"].type == "counter"
    cache = {x.labels["result"]: x.value for x in fams["vitals_endpoint_cache_requests"].samples}
    assert cache == {"hit": sum(1 for e in ev if e.get("cache") == "hit"),
                     "miss": sum(1 for e in ev if e.get("cache") == "miss")}
    quant = fams["vitals_endpoint_latency_quantile_seconds"]
    assert quant.type == "summary"
    assert {x.labels["quantile"] for x in quant.samples if "quantile" in x.labels} == \
        {"0.5", "0.95", "0.99"}


async def test_batch_and_cache(loaded):
    stack, clock, key, requests, _ = loaded
    r = await stack.http.post("/v2/endpoints/metrics/batch", json={
        "endpointIds": [EP, "22", 999], "timeframe": "1h", "metrics": ["performance", "costs"],
        "aggregation": "sum"}, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    body = r.json()
    start, end = window(900, 3600)
    assert [d["endpointId"] for d in body["endpoints"]] == [str(EP)]
    assert body["endpoints"][0]["summary"]["totalExecutions"] == len(mine(requests, start, end))
    assert {(e["endpointId"], e["status"]) for e in body["errors"]} == {("22", 403),
                                                                      ("999", 404)}
    assert body["aggregate"]["totalExecutions"] == len(mine(requests, start, end))
    # cached for 5 s at 1m granularity: the same document, recomputed in the background once
    # it is past half that age (its callers keep getting the kept one meanwhile), and never
    # served older than 5 s
    state = stack.rt.api_app.state.endpoint_metrics
    computed = state.computations
    first = await get(stack, key, timeframe="1h", granularity="1m")
    assert first.headers["x-cache"] == "MISS" and first.json()["cached"] is False
    assert state.computations == computed + 1
    clock.t = NOW + 2
    again = await get(stack, key, timeframe="1h", granularity="1m")
    assert again.headers["x-cache"] == "HIT" and not state.refreshing
    assert again.json() == {**first.json(), "cached": True}  # the same document, said cached
    assert again.content == (await get(stack, key, timeframe="1h", granularity="1m")).content
    clock.t = NOW + 3  # past half its age: served, and recomputed behind the answer
    kept = await get(stack, key, timeframe="1h", granularity="1m")
    assert kept.headers["x-cache"] == "HIT" and kept.content == again.content
    assert len(state.refreshing) == 1
    await asyncio.gather(*state.refreshing.values())
    refreshed = await get(stack, key, timeframe="1h", granularity="1m")
    assert refreshed.headers["x-cache"] == "HIT" and refreshed.json()["cached"] is True
    assert state.computations == computed + 2  # the first, and the one behind the answers
    assert refreshed.json()["generatedAt"] == iso(NOW + 3) != first.json()["generatedAt"]
    clock.t = NOW + 8  # the refreshed document is 5 s old: computed again, in the call
    fresh = await get(stack, key, timeframe="1h", granularity="1m")
    assert fresh.headers["x-cache"] == "MISS" and state.computations == computed + 3
    assert fresh.json()["generatedAt"] == iso(NOW + 8)


def close(a, b, path="doc"):
    """Equal, floats to 1e-9 relative (sums may add in another order once compacted)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            close(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


async def test_compaction_redelivery_and_late_events_stay_exact(loaded):
    """Compacted rollups change nothing; a redelivery of every message changes nothing; a late
    event in an already compacted bucket is counted (its bucket falls back to source rows)."""
    from pipeline.cli.runtime import Runtime
    from pipeline.ingest import compaction

    stack, _, key, requests, _ = loaded
    cache = stack.rt.api_app.state.endpoint_metrics.cache
    p5 = {"timeframe": "6h", "granularity": "5m", "metrics": "performance,errors,costs"}
    p1 = {"timeframe": "1h", "granularity": "1m", "metrics": "performance,costs"}

    async def doc(params=p5):
        cache.clear()
        r = await get(stack, key, **params)
        assert r.status_code == 200, r.text
        d = r.json()
        d.pop("generatedAt")
        return d

    before = await doc()
    before_1m = await doc(p1)
    pr = {"timeframe": "6h", "granularity": "5m", "metrics": "resources"}
    before_res = await doc(pr)
    assert before_res["resources"]["gpu"]["memory"]["allocatedBytes"] == 80 * 2**30
    heartbeats = (await stack.rows("SELECT count() FROM {db}.heartbeats_raw"))[0][0]

    async def compact_all():
        for table in ("requests_1m", "requests_1h"):
            await stack.rt.store.call(
                lambda s, t=table: compaction.compact(s, t, T - 86400, T + 3600,
                                                     row_version(time.time())))

    await compact_all()
    merged = await stack.rows("SELECT count() FROM {db}.requests_1m_merged FINAL "
                              f"WHERE endpoint_id = {EP}")
    assert merged[0][0] == len({int(e["ts"]) // 60 for e in mine(requests, 0, 2**40)})
    close(await doc(), before)
    close(await doc(p1), before_1m)
    replay = Runtime(stack.settings.with_(consumer_group=stack.settings.consumer_group + "-r",
                                          compact_interval_s=0), api=False, clock=ManualClock(NOW))
    await replay.start()
    try:
        await stack.wait_for(lambda: stack.rows("SELECT count() FROM {db}.requests_raw"),
                             [(2 * len(requests),)], timeout=120)
        await stack.wait_for(lambda: stack.rows("SELECT count() FROM {db}.heartbeats_raw"),
                             [(2 * heartbeats,)], timeout=120)
    finally:
        await replay.stop()
    close(await doc(), before)
    # every heartbeat twice: the same resources (sample counts and worker seconds exact; GPU
    # efficiency and the scaling load come from the requests' float sums, added in another order)
    close((await doc(pr))["resources"], before_res["resources"])
    late = {"v": 1, "type": "request", "ts": T - 1000.5, "tenant": "acme", "endpoint_id": EP,
            "endpoint": NAME, "status": 500, "latency_ms": 12345.0}
    async with Producer(stack.settings.kafka_bootstrap, stack.settings.topics,
                        clock=ManualClock(NOW)) as p:
        await p.send("requests", late)
    await stack.wait_requests(len(requests) + 1)
    after = await doc()
    assert after["summary"]["totalExecutions"] == before["summary"]["totalExecutions"] + 1
    assert after["summary"]["failedExecutions"] == before["summary"]["failedExecutions"] + 1
    start, _ = window(300, 6 * 3600)
    k = (T - 1001 - start) // 300
    pts_a = after["performance"]["latency"]["timeSeries"]
    pts_b = before["performance"]["latency"]["timeSeries"]
    assert pts_a[k]["count"] == pts_b[k]["count"] + 1 and pts_a[k]["max"] == 12.345
    assert [p["count"] for i, p in enumerate(pts_a) if i != k] == [
        p["count"] for i, p in enumerate(pts_b) if i != k]
    after_1m = await doc(p1)
    assert after_1m["summary"]["totalExecutions"] == \
        before_1m["summary"]["totalExecutions"] + 1
    await compact_all()  # the stale buckets are rewritten; nothing changes
    close(await doc(p1), after_1m)
    close(await doc(), after)
