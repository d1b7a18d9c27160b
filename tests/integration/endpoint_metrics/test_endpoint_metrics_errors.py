"""Every error of the endpoint metrics routes (400/401/403/404/429 with the reference's bodies)
and the pipeline's own `GET /metrics` additions (consumer lag, live workers)."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.core.clock import ManualClock
from pipeline.sdk.producer import Producer
from tests.promtool import check_metrics

NOW = float(int(time.time()) // 60 * 60 + 30)


async def seed(stack) -> None:
    async with Producer(stack.settings.kafka_bootstrap, stack.settings.topics,
                        clock=ManualClock(NOW)) as p:
        for tenant, ep, name in (("acme", 1, "mine"), ("rival", 2, "theirs")):
            await p.send("requests", {"v": 1, "type": "request", "ts": NOW - 10,
                                      "tenant": tenant, "endpoint_id": ep, "endpoint": name,
                                      "status": 200, "latency_ms": 12.0})
        await p.send_many("heartbeats", [
            {"v": 1, "type": "heartbeat", "ts": NOW - 5, "tenant": "acme", "endpoint_id": 1,
             "id": w} for w in (7, 8)])
    await stack.wait_requests(2)
    await stack.wait_for(lambda: stack.rows("SELECT count() FROM {db}.heartbeats_raw"), [(2,)])


@pytest.fixture
async def api(stack_factory):
    clock = ManualClock(NOW)
    stack = await stack_factory(clock=clock, metrics_rate_limit=3, metrics_rate_window_s=60,
                                topic_partitions=2)
    await seed(stack)
    return stack, clock


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


BAD_QUERIES = [
    ({"timeframe": "2y"}, "timeframe", ["1h", "6h", "24h", "7d", "30d"]),
    ({"granularity": "2m"}, "granularity", ["1m", "5m", "15m", "1h", "1d"]),
    ({"timeframe": "24h", "granularity": "1m"}, "granularity", ["5m", "15m", "1h", "1d"]),
    ({"timeframe": "1h", "granularity": "1d"}, "granularity", ["1m", "5m", "15m", "1h"]),
    ({"timeframe": "30d", "granularity": "15m"}, "granularity", ["1h", "1d"]),
    ({"metrics": "performance,latency"}, "metrics",
     ["performance", "usage", "costs", "resources", "errors"]),
    ({"format": "xml"}, "format", ["json", "csv", "prometheus"]),
    ({"aggregation": "median"}, "aggregation", ["avg", "sum", "min", "max", "p95", "p99"]),
    ({"timeframe": ["1h", "6h"]}, "timeframe", None),
]


async def test_invalid_parameters(api):
    stack, clock = api
    key = await stack.key("acme", "reader")
    for params, param, allowed in BAD_QUERIES:
        clock.t += 61  # a fresh rate-limit window per case
        r = await stack.http.get("/v2/endpoints/1/metrics", params=params, headers=auth(key))
        assert r.status_code == 400, (params, r.text)
        err = r.json()
        assert err["error"] == "INVALID_PARAMETERS"
        assert err["details"]["parameter"] == param and param in err["message"]
        assert "value" in err["details"]
        if allowed is not None:
            assert err["details"]["allowedValues"] == allowed
    bad_batches = [
        ({}, "endpointIds"), ({"endpointIds": []}, "endpointIds"),
        ({"endpointIds": "1"}, "endpointIds"), ({"endpointIds": [True]}, "endpointIds"),
        ({"endpointIds": list(range(51))}, "endpointIds"),
        ({"endpointIds": [1], "timeframe": "1y"}, "timeframe"),
        ({"endpointIds": [1], "metrics": ["nope"]}, "metrics"),
        ({"endpointIds": [1], "format": "csv"}, "format"),
    ]
    for body, param in bad_batches:
        clock.t += 61
        r = await stack.http.post("/v2/endpoints/metrics/batch", json=body, headers=auth(key))
        assert r.status_code == 400, (body, r.text)
        assert r.json()["details"]["parameter"] == param
    admin = await stack.key("acme", "admin")
    for body, param in (({"gpuSecondPrice": -1}, "gpuSecondPrice"),
                        ({"requestPrice": "cheap"}, "requestPrice"),
                        ({"monthlyBudget": 0}, "monthlyBudget"),
                        ({"currency": "U$D"}, "currency")):
        r = await stack.http.put("/v2/endpoints/1/pricing", json=body, headers=auth(admin))
        assert r.status_code == 400 and r.json()["details"]["parameter"] == param


async def test_auth_permissions_and_unknown(api):
    stack, clock = api
    r = await stack.http.get("/v2/endpoints/1/metrics")
    assert r.status_code == 401 and r.json()["error"] == "UNAUTHORIZED"
    r = await stack.http.get("/v2/endpoints/1/metrics", headers=auth("vk_nope"))
    assert r.status_code == 401
    r = await stack.http.post("/v2/endpoints/metrics/batch", json={"endpointIds": [1]})
    assert r.status_code == 401
    key = await stack.key("acme", "reader")
    r = await stack.http.get("/v2/endpoints/2/metrics", headers=auth(key))
    assert r.status_code == 403
    body = r.json()
    assert body["error"] == "INSUFFICIENT_PERMISSIONS"
    assert set(body["details"]) == {"requiredPermission", "currentPermissions"}
    assert body["details"]["currentPermissions"] == ["reader"]
    r = await stack.http.get("/v2/endpoints/999/metrics", headers=auth(key))
    assert r.status_code == 404 and r.json()["error"] == "NOT_FOUND"
    clock.t += 61
    r = await stack.http.get("/v2/endpoints/theirs/metrics", headers=auth(key))
    assert r.status_code == 404  # names resolve within the key's tenant only
    r = await stack.http.get("/v2/endpoints/mine/metrics", headers=auth(key))
    assert r.status_code == 200 and r.json()["endpointId"] == "1"
    # pricing: a reader may read it but not set it; an admin of another tenant neither
    r = await stack.http.put("/v2/endpoints/1/pricing", json={"requestPrice": 1},
                             headers=auth(key))
    assert r.status_code == 403
    assert r.json()["details"] == {"requiredPermission": "admin",
                                   "currentPermissions": ["reader"]}
    rival = await stack.key("rival", "admin")
    r = await stack.http.put("/v2/endpoints/1/pricing", json={"requestPrice": 1},
                             headers=auth(rival))
    assert r.status_code == 403
    admin = await stack.key("acme", "admin")
    r = await stack.http.put("/v2/endpoints/1/pricing", json={"requestPrice": 0.5,
                                                              "monthlyBudget": 10},
                             headers=auth(admin))
    assert r.status_code == 200 and r.json()["requestPrice"] == 0.5
    clock.t += 61
    r = await stack.http.get("/v2/endpoints/1/pricing", headers=auth(key))
    assert r.json()["monthlyBudget"] == 10 and r.json()["configured"] is True
    r = await stack.http.get("/v2/endpoints/1/metrics", params={"metrics": "costs"},
                             headers=auth(key))
    assert r.json()["summary"]["totalCost"] == 0.5  # one request at 0.5


async def test_rate_limit(api):
    stack, clock = api
    key = await stack.key("acme", "reader")
    other = await stack.key("acme", "reader")
    for i in range(3):
        clock.t = NOW + i * 10
        r = await stack.http.get("/v2/endpoints/1/metrics", headers=auth(key))
        assert r.status_code == 200, r.text
    clock.t = NOW + 25
    r = await stack.http.get("/v2/endpoints/1/metrics", headers=auth(key))
    assert r.status_code == 429
    assert r.json() == {"error": "RATE_LIMIT_EXCEEDED", "message": "Too many metrics requests",
                        "details": {"limit": 3, "window": "1m", "retryAfter": 35,
                                    "suggestion": "Use batch endpoints or increase polling "
                                                  "interval"}}
    assert r.headers["retry-after"] == "35"
    r = await stack.http.post("/v2/endpoints/metrics/batch", json={"endpointIds": [1]},
                              headers=auth(key))
    assert r.status_code == 429
    r = await stack.http.get("/v2/endpoints/1/metrics", headers=auth(other))
    assert r.status_code == 200  # limits are per key
    clock.t = NOW + 60  # the first call leaves the sliding window
    r = await stack.http.get("/v2/endpoints/1/metrics", headers=auth(key))
    assert r.status_code == 200


async def test_pipeline_metrics_lag_and_live_workers(api):
    stack, clock = api
    async with Producer(stack.settings.kafka_bootstrap, stack.settings.topics,
                        clock=ManualClock(NOW)) as p:
        await p.send_raw(stack.settings.topics.requests, b"{not json", b"1")  # a dead letter
    await stack.wait_for(lambda: stack.rows("SELECT count() FROM {db}.dead_letters"), [(1,)])

    async def scrape():
        r = await stack.http.get("/metrics")
        assert r.status_code == 200
        check_metrics(r.text)
        return {f.name: f for f in text_string_to_metric_families(r.text)}

    fams = await scrape()
    live = {(s.labels["tenant"], s.labels["endpoint_id"]): s.value
            for s in fams["vitals_live_workers"].samples}
    assert live == {("acme", "1"): 2.0}
    topics = stack.settings.topics
    expected = sorted((topics.topic(k), str(p), 0.0) for k in ("requests", "heartbeats")
                      for p in (0, 1))
    lag = None
    for _ in range(60):  # offsets are committed shortly after the inserts
        lag = sorted((s.labels["topic"], s.labels["partition"], s.value)
                     for s in fams["vitals_consumer_lag"].samples
                     if s.labels["topic"] in (topics.requests, topics.heartbeats))
        if lag == expected:
            break
        await asyncio.sleep(0.5)
        clock.t += 6  # past the 5 s refresh interval of the scrape-time gauges
        fams = await scrape()
    assert lag == expected
    assert fams["vitals_consumer_lag"].type == "gauge"
    clock.t = NOW + 120  # both workers' heartbeats are now older than the liveness timeout
    fams = await scrape()
    assert fams.get("vitals_live_workers") is None or not fams["vitals_live_workers"].samples
    consumed = {s.labels["topic"]: s.value for s in fams["vitals_events_consumed"].samples}
    assert consumed[topics.requests] == 2 and consumed[topics.heartbeats] == 2
    dlq = {s.labels["topic"]: s.value for s in fams["vitals_dlq_messages"].samples}
    assert dlq[topics.requests] == 1
    assert fams["vitals_insert_seconds"].type == "histogram"
    assert fams["vitals_api_request_seconds"].type == "histogram"
