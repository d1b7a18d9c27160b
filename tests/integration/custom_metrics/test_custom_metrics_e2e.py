"""Custom metrics end to end: a real DogStatsD client library (datadog's `DogStatsd`) and
Vitals' own `MetricsClient` send UDP to the listener of a running stack; the values come back
exactly through `GET /v2/metrics/custom/*`. Malformed and oversized datagrams are counted, the
per-tenant series limit dead-letters the excess visibly."""

from __future__ import annotations

import math
import random
import socket
import time

from datadog.dogstatsd import DogStatsd

from pipeline.sdk.metrics_client import MetricsClient
from pipeline.sdk.producer import Producer
from pipeline.storage import sketch
from tests.integration.ingest.test_dead_letters import read_dlq
from tests.promtool import check_metrics


def _true_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def _metric_value(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


async def test_dogstatsd_values_come_back_exactly(stack_factory):
    stack = await stack_factory(statsd_port=0, statsd_flush_s=0.1, statsd_max_datagram=2048,
                                metrics_max_series=20)
    port = stack.rt.statsd.port
    key = await stack.key("default", "reader")
    auth = {"Authorization": f"Bearer {key}"}
    t_start = int(time.time()) - 5
    dd = DogStatsd(host="127.0.0.1", port=port, disable_telemetry=True,
                   origin_detection_enabled=False)
    rng = random.Random(7)
    latencies = {"a": [rng.uniform(1, 500) for _ in range(300)],
                 "b": [rng.uniform(100, 900) for _ in range(200)]}
    for model, values in latencies.items():
        for i, v in enumerate(values):
            dd.histogram("api.latency", round(v, 3), tags=[f"model:{model}", "env:prod"])
            if i % 10 == 0:
                dd.increment("api.calls", 3, tags=[f"model:{model}"])
    for depth in (5, 9, 2, 7):
        dd.gauge("queue.depth", depth, tags=["queue:main"])
        time.sleep(0.002)
    ours = MetricsClient("127.0.0.1", port)
    for _ in range(25):
        ours.increment(metric="api.calls", value=2, tags={"model": "c"})
    # a sampled counter line (@0.25 counts 4×), written raw
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.sendto(b"api.calls:1|c|@0.25|#model:c", ("127.0.0.1", port))
    # malformed lines among good ones, and one oversized datagram
    raw.sendto(b"api.calls:x|c\nqueue.depth|g\napi.calls:1|c|#model:c\nbad:1|s",
               ("127.0.0.1", port))
    raw.sendto(b"api.calls:1|c|#model:c\n" * 120, ("127.0.0.1", port))  # 2760 bytes > 2048
    t_end = int(time.time()) + 5
    expected_calls = {"a": 30 * 3, "b": 20 * 3, "c": 25 * 2 + 4 + 1}
    base = (f"/v2/metrics/custom/timeseries?name=api.calls&t1={t_start}&t2={t_end}"
            f"&step={t_end - t_start}")

    async def calls_by_model():
        r = await stack.http.get(base + "&group_by=model", headers=auth)
        assert r.status_code == 200, r.text
        return {s["tags"]["model"]: s["points"][0][1] for s in r.json()["series"]}

    await stack.wait_for(calls_by_model, expected_calls)
    r = await stack.http.get(base + "&aggregation=rate", headers=auth)
    assert r.json()["series"][0]["points"] == [[t_start, sum(expected_calls.values()) /
                                                (t_end - t_start)]]
    r = await stack.http.get(base + "&aggregation=count&tag=model:c", headers=auth)
    assert r.json()["series"][0]["points"][0][1] == 25 + 1 + 1

    hist = (f"/v2/metrics/custom/timeseries?name=api.latency&t1={t_start}&t2={t_end}"
            f"&step={t_end - t_start}&tag=env:prod")
    for agg in ("count", "sum", "min", "max", "p50", "p95", "p99"):
        r = await stack.http.get(hist + f"&aggregation={agg}&group_by=model", headers=auth)
        got = {s["tags"]["model"]: s["points"][0][1] for s in r.json()["series"]}
        for model, values in latencies.items():
            vals = [round(v, 3) for v in values]
            if agg == "count":
                assert got[model] == len(vals)
            elif agg == "sum":
                assert math.isclose(got[model], sum(vals), rel_tol=1e-9)
            elif agg == "min":
                assert got[model] == min(vals)
            elif agg == "max":
                assert got[model] == max(vals)
            else:
                truth = _true_quantile(vals, int(agg[1:]) / 100)
                assert abs(got[model] - truth) <= sketch.ALPHA * truth * 1.0001, (agg, model)

    gauge = (f"/v2/metrics/custom/timeseries?name=queue.depth&t1={t_start}&t2={t_end}"
             f"&step={t_end - t_start}")
    for agg, want in (("last", 7.0), ("min", 2.0), ("max", 9.0), ("avg", 23 / 4)):
        r = await stack.http.get(gauge + f"&aggregation={agg}", headers=auth)
        assert r.json()["series"][0]["points"][0][1] == want, agg

    # per-second points: every sample falls in exactly one step
    r = await stack.http.get(f"/v2/metrics/custom/timeseries?name=api.calls&t1={t_start}"
                             f"&t2={t_end}&step=1", headers=auth)
    points = r.json()["series"][0]["points"]
    assert len(points) == t_end - t_start and sum(v for _, v in points) == sum(
        expected_calls.values())

    r = await stack.http.get("/v2/metrics/custom/series?prefix=api.", headers=auth)
    series = {(s["name"], s["kind"], tuple(sorted(s["tags"].items()))) for s in
              r.json()["series"]}
    assert series == {
        ("api.calls", "c", (("model", "a"),)), ("api.calls", "c", (("model", "b"),)),
        ("api.calls", "c", (("model", "c"),)),
        ("api.latency", "h", (("env", "prod"), ("model", "a"))),
        ("api.latency", "h", (("env", "prod"), ("model", "b"))),
    }

    # malformed lines and the oversized datagram were counted; the listener kept going
    await stack.rt.statsd.flush()
    text = (await stack.http.get("/metrics")).text
    check_metrics(text)
    assert _metric_value(text, "vitals_statsd_malformed_total") == 3
    assert _metric_value(text, 'vitals_statsd_dropped_total{reason="oversized"}') == 1
    assert stack.rt.statsd.last_malformed is not None

    # 400s name the parameter and the allowed values
    r = await stack.http.get(base + "&aggregation=median", headers=auth)
    assert r.status_code == 400 and r.json()["details"]["parameter"] == "aggregation"
    assert "p99" in r.json()["details"]["allowedValues"]
    r = await stack.http.get("/v2/metrics/custom/timeseries?t1=1", headers=auth)
    assert r.status_code == 400 and r.json()["details"]["parameter"] == "name"
    r = await stack.http.get(base + "&tag=nocolon", headers=auth)
    assert r.status_code == 400 and r.json()["details"]["parameter"] == "tag"
    r = await stack.http.get(base.replace(f"step={t_end - t_start}", "step=0"), headers=auth)
    assert r.status_code == 400 and r.json()["details"]["parameter"] == "step"
    # another tenant's metrics: 403 for a reader; a superadmin may name the tenant
    r = await stack.http.get(base + "&tenant=rival", headers=auth)
    assert r.status_code == 403
    boss = await stack.key("rival", "superadmin")
    r = await stack.http.get(base + "&tenant=default",
                             headers={"Authorization": f"Bearer {boss}"})
    assert r.status_code == 200 and len(r.json()["series"]) == 1
    r = await stack.http.get(base, headers={"Authorization": f"Bearer {boss}"})
    assert r.json()["series"] == []  # its own tenant has no metrics
    dd.close_socket()
    ours.close()
    raw.close()

    # the series limit (20 per tenant) through the Kafka path: 25 series, 5 dead-lettered
    s = stack.settings
    now = time.time()
    async with Producer(s.kafka_bootstrap, s.topics) as p:
        for i in range(25):
            await p.send("metrics", {"v": 1, "type": "metric", "ts": now, "tenant": "flood",
                                     "name": "card.test", "kind": "c", "value": 1,
                                     "tags": {"i": str(i)}})
    dlq = await read_dlq(s.kafka_bootstrap, s.topics.dlq("metrics"), 5)
    assert len(dlq) == 5 and all(d["reason"].startswith("series limit: tenant 'flood' has 20")
                                 for d in dlq)
    # the DLQ records leave before the batch's rows are inserted: wait for the rows
    await stack.wait_for(lambda: stack.rows("SELECT count(), sum(sum) FROM {db}.metrics_1s "
                                            "FINAL WHERE tenant = 'flood'"), [(20, 20.0)])
    # the registry rows are a separate insert of the same batch: wait for them too
    await stack.wait_for(lambda: stack.rows("SELECT count() FROM {db}.metric_series FINAL "
                                            "WHERE tenant = 'flood'"), [(20,)])
    assert stack.rt.telemetry.value("vitals_metrics_series_rejected_total", tenant="flood") == 5

    # with the listener gone, both clients keep going without an exception
    await stack.rt.statsd.stop()
    late = MetricsClient("127.0.0.1", port)
    dd = DogStatsd(host="127.0.0.1", port=port, disable_telemetry=True,
                   origin_detection_enabled=False)
    for i in range(200):
        late.increment(metric="after.stop", tags={"i": str(i)})
        late.histogram(metric="after.stop.h", value=i)
        dd.increment("after.stop")
    assert late.sent + late.dropped == 400
    late.close()
    dd.close_socket()


async def test_a_counter_and_a_gauge_under_one_name_stay_apart(stack_factory):
    """DogStatsD lets one name carry a counter and a gauge; their values are never summed:
    `kind` picks one, and without it the name is a 400 listing its kinds."""
    stack = await stack_factory(statsd_port=0, statsd_flush_s=0.1)
    key = await stack.key("default", "reader")
    auth = {"Authorization": f"Bearer {key}"}
    t_start = int(time.time()) - 5
    dd = DogStatsd(host="127.0.0.1", port=stack.rt.statsd.port, disable_telemetry=True,
                   origin_detection_enabled=False)
    for _ in range(10):
        dd.increment("jobs.done", 3)
    for depth in (40, 41, 42):
        dd.gauge("jobs.done", depth)
        time.sleep(0.002)
    dd.increment("only.counter", 2)
    dd.close_socket()
    t_end = int(time.time()) + 5
    base = (f"/v2/metrics/custom/timeseries?name=jobs.done&t1={t_start}&t2={t_end}"
            f"&step={t_end - t_start}")

    async def value(query: str) -> object:
        r = await stack.http.get(query, headers=auth)
        assert r.status_code == 200, r.text
        series = r.json()["series"]
        return series[0]["points"][0][1] if series else None

    await stack.wait_for(lambda: value(base + "&kind=c"), 30.0)
    await stack.wait_for(lambda: value(base + "&kind=g&aggregation=last"), 42.0)
    assert await value(base + "&kind=g&aggregation=max") == 42.0
    assert await value(base + "&kind=c&aggregation=count") == 10
    r = await stack.http.get(base, headers=auth)
    assert r.status_code == 400, r.text
    assert r.json()["details"]["parameter"] == "kind"
    assert r.json()["details"]["allowedValues"] == ["c", "g"]
    r = await stack.http.get(base + "&kind=x", headers=auth)
    assert r.status_code == 400 and r.json()["details"]["allowedValues"] == \
        ["c", "g", "h", "ms", "d"]
    # a name with one kind needs no kind parameter
    one = base.replace("jobs.done", "only.counter")
    await stack.wait_for(lambda: value(one), 2.0)
    r = await stack.http.get(one, headers=auth)
    assert r.json()["kind"] == "c"
