"""Pure parts of the endpoint metrics: parameters and windows, scaling sessions, CSV and
Prometheus formatting, rate limit and cache, cost rules."""

from __future__ import annotations

import csv
import io
import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.core.settings import Settings, SettingsError
from pipeline.storage import sketch
from query_api.endpoint_metrics import formats
from query_api.endpoint_metrics.costs import Budget as BudgetInput
from query_api.endpoint_metrics.costs import budget, month_bounds, suggestions
from query_api.endpoint_metrics.params import parse_query, window_for
from query_api.endpoint_metrics.scaling import Session, scaling, sessions_from_gaps
from query_api.endpoint_metrics.sections import Pricing, Sums, iso, latency_trend
from query_api.errors import ApiError
from query_api.ratelimit import RateLimiter, TtlCache
from tests.promtool import check_metrics

LIMITS = Settings().metrics_max_range


def test_defaults_and_window_alignment():
    q = parse_query({}, LIMITS)
    assert (q.timeframe, q.granularity, q.format, q.aggregation) == ("24h", "15m", "json", "avg")
    assert q.sections == ("performance", "usage", "costs", "resources", "errors")
    assert parse_query({"timeframe": "30d"}, LIMITS).granularity == "1h"
    q = parse_query({"timeframe": "1h", "granularity": "5m", "metrics": ["costs", "usage,costs"]},
                    LIMITS)
    assert q.sections == ("usage", "costs")
    w = window_for(q, 1_000_000_123.4)
    assert w.end == 1_000_000_200 and w.start == w.end - 3600 and len(w.points) == 12
    assert w.horizon_ms == 1_000_000_123_400


@pytest.mark.parametrize("params,param,allowed", [
    ({"timeframe": "2y"}, "timeframe", ["1h", "6h", "24h", "7d", "30d"]),
    ({"timeframe": "6h", "granularity": "1d"}, "granularity", ["1m", "5m", "15m", "1h"]),
    ({"timeframe": "7d", "granularity": "5m"}, "granularity", ["15m", "1h", "1d"]),
    ({"format": "yaml"}, "format", ["json", "csv", "prometheus"]),
    ({"aggregation": "p50"}, "aggregation", ["avg", "sum", "min", "max", "p95", "p99"]),
    ({"metrics": "usage,,costs"}, "metrics", None),
])
def test_bad_parameters(params, param, allowed):
    with pytest.raises(ApiError) as exc:
        parse_query(params, LIMITS)
    assert exc.value.status == 400 and exc.value.details["parameter"] == param
    if allowed is not None:
        assert exc.value.details["allowedValues"] == allowed


def test_max_range_setting():
    s = Settings.from_env({"VITALS_METRICS_MAX_RANGE": "1m=24h"})
    assert dict(s.metrics_max_range)["1m"] == 86400
    assert parse_query({"timeframe": "24h", "granularity": "1m"}, s.metrics_max_range)
    with pytest.raises(SettingsError):
        Settings.from_env({"VITALS_METRICS_MAX_RANGE": "2m=1h"})


def test_sessions_and_scaling_events():
    # worker 1: heartbeats 0, 10, 20 s then 200 s; worker 2: 50 s only; liveness 30 s
    rows = [(1, 0, 200_000, [200_000], [180_000]), (2, 50_000, 50_000, [], [])]
    ss = sessions_from_gaps(rows, 30_000)
    assert ss == [Session(1, 0, 50_000), Session(1, 200_000, 230_000), Session(2, 50_000, 80_000)]
    sc = scaling(ss, 0, 220_000, [0, 60_000, 120_000, 210_000])
    # at 50 s worker 1 expires while worker 2 appears: net zero, no event
    assert [(e["action"], e["from"], e["to"]) for e in sc.events] == [
        ("scale_down", 1, 0), ("scale_up", 0, 1)]
    assert sc.events[0]["timestamp"] == iso(80) and sc.current == 1 and sc.peak == 1
    assert [e["duration"] for e in sc.events] == [120.0, 20.0]  # 80 → 200 s, 200 → 220 s
    assert sc.at_points == [1, 1, 0, 1]
    assert sc.worker_seconds == 50 + 30 + 20


def test_quantile_bound_against_exact():
    import random

    rng = random.Random(3)
    values = [rng.lognormvariate(4, 1.2) for _ in range(5000)]
    hist: dict[int, int] = {}
    for v in values:
        sketch.add(hist, v)
    ordered = sorted(values)
    for q in (0.5, 0.9, 0.95, 0.99, 1.0):
        exact = ordered[max(1, math.ceil(q * len(values))) - 1]
        assert sketch.quantile(hist, q) == pytest.approx(exact, rel=sketch.ALPHA)


def test_csv_rfc4180():
    text = formats.csv_text(["a", "b,c"], [['say "hi"', 1.0], ["x\ny", None]])
    assert text == 'a,"b,c"\r\n"say ""hi""",1\r\n"x\ny",\r\n'
    assert list(csv.reader(io.StringIO(text, newline=""))) == [
        ["a", "b,c"], ['say "hi"', "1"], ["x\ny", ""]]


def test_prometheus_exposition_parses():
    hist = {sketch.bucket_of(3.0): 2, sketch.bucket_of(300.0): 1, sketch.ZERO_BUCKET: 1}
    doc = {"endpointId": "5", "timeframe": "1h", "summary": {
        "successfulExecutions": 3, "failedExecutions": 1, "totalComputeTime": 0.306,
        "p50Latency": 0.003, "p95Latency": 0.3, "p99Latency": 0.3, "successRate": 75.0,
        "coldStartCount": 0, "averageQueueTime": None},
        "costs": {"currency": "USD", "breakdown": {"compute": {"amount": 1.5},
                                                   "network": {"amount": 0.25}},
                  "budgetAnalysis": None}}
    text = formats.prometheus_text(doc, hist)
    check_metrics(text)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    h = fams["vitals_endpoint_latency_seconds"]
    buckets = {s.labels["le"]: s.value for s in h.samples if s.name.endswith("_bucket")}
    assert buckets["0.005"] == 3 and buckets["0.25"] == 3 and buckets["0.5"] == 4
    assert buckets["+Inf"] == 4
    assert "vitals_endpoint_queue_seconds_average" not in fams  # null values are left out
    costs = {s.labels["category"]: s.value for s in fams["vitals_endpoint_cost"].samples}
    assert costs == {"compute": 1.5, "network": 0.25}


def test_rate_limiter_sliding_window():
    now = [100.0]
    rl = RateLimiter(2, 60, lambda: now[0])
    rl.check("k")
    now[0] = 130
    rl.check("k")
    now[0] = 150
    with pytest.raises(ApiError) as exc:
        rl.check("k")
    assert exc.value.status == 429 and exc.value.headers == {"Retry-After": "10"}
    assert exc.value.details["window"] == "1m" and exc.value.details["retryAfter"] == 10
    rl.check("other")
    now[0] = 160
    rl.check("k")


def test_ttl_cache():
    now = [0.0]
    c = TtlCache(lambda: now[0], size=2)
    c.put("a", 1, 5)
    now[0] = 4.9
    assert c.get("a") == 1
    now[0] = 5
    assert c.get("a") is None
    c.put("a", 1, 10)
    c.put("b", 2, 10)
    c.put("c", 3, 10)
    assert c.get("a") is None and c.get("c") == 3


def test_trend_and_budget_and_rules():
    assert latency_trend((10, 1000.0), (10, 1000.0))["trend"] == "stable"
    t = latency_trend((10, 1200.0), (10, 1000.0))
    assert t["trend"] == "degrading" and t["changePercent"] == pytest.approx(20)
    assert latency_trend((0, 0.0), (10, 1.0))["trend"] is None
    start, end = month_bounds(1_700_000_000)  # 2023-11-14
    assert iso(start) == "2023-11-01T00:00:00Z" and iso(end) == "2023-12-01T00:00:00Z"
    p = Pricing(0.01, 0.001, 0.1, 100.0, "USD", True)
    b = budget(p, BudgetInput(start, end, 30.0, start + 10 * 86400))
    assert b is not None
    assert b["projectedTotal"] == pytest.approx(90.0) and b["onTrack"] is True
    assert b["burnRate"] == pytest.approx(3.0) and b["remainingBudget"] == 70.0
    s = Sums(requests=100, failures=10, cold_starts=5, cold_start_ms_sum=10_000.0,
             latency_sum=20_000.0, gpu_seconds=10.0, bytes_out=10**9)
    found = {x["category"]: x for x in suggestions(s, p, worker_seconds=100.0)}
    assert set(found) == {"cold_starts", "idle_time", "failed_requests", "data_transfer"}
    assert found["cold_starts"]["savings"] == pytest.approx(0.1)
    assert found["idle_time"]["savings"] == pytest.approx(80 * 0.01)
    assert all(x["rule"] for x in found.values())


def test_target_instances_follow_the_vast_autoscaler_rule():
    from query_api.endpoint_metrics.scaling import VastRule, target_instances
    # 3 workers of 10 units/s each; load 25 units/s at 90% target utilisation → 27.8 → 3
    assert target_instances(25.0, 30.0, 3) == 3
    assert target_instances(28.0, 30.0, 3) == 4  # 31.1 units/s of capacity wanted
    assert target_instances(0.0, 30.0, 3) == 0  # no load, min_load 0: nothing active
    assert target_instances(0.0, 30.0, 3, VastRule(min_load=15.0)) == 2
    assert target_instances(1e6, 30.0, 3) == 20  # max_workers
    assert target_instances(5.0, 0.0, 0) is None  # no live worker: per-worker perf unknown


def test_scaling_without_any_change_has_no_events():
    """No session: no event, and no error (the durations pass over an empty event list)."""
    sc = scaling([], 0, 60_000, [0, 30_000])
    assert (sc.events, sc.current, sc.peak, sc.worker_seconds) == ([], 0, 0, 0)
