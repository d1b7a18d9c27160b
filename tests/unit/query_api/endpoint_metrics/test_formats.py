"""query_api.endpoint_metrics.formats: the Prometheus writer's output passes the real `promtool
check metrics`
with every family present, and CSV headers the metrics routes build are unique."""

from __future__ import annotations

import pytest

from query_api.endpoint_metrics import formats
from tests.promtool import check_metrics

DOC = {
    "endpointId": "21", "timeframe": "1h",
    "summary": {"successfulExecutions": 5, "failedExecutions": 1, "totalComputeTime": 1.5,
                "p50Latency": 0.1, "p95Latency": 0.2, "p99Latency": 0.3, "successRate": 90.0,
                "coldStartCount": 1, "averageQueueTime": 0.01},
    "performance": {"errorRates": {"breakdown": {"4xx": 1, "5xx": 0, "timeouts": 0,
                                                 "resourceExhausted": 0, "other": 0}}},
    "costs": {"currency": "USD",
              "breakdown": {"compute": {"amount": 1.0}, "requests": {"amount": 0.1},
                            "network": {"amount": 0.0}},
              "budgetAnalysis": {"remainingBudget": 3.0}},
    "usage": {"compute": {"totalSeconds": 1.0, "gpuSeconds": 0.5},
              "data": {"outputBytes": 10, "inputBytes": 4, "cacheHits": 2, "cacheMisses": 1}},
    "resources": {"gpu": {"utilization": {"average": 50.0},
                          "memory": {"average": 30.0, "allocatedBytes": 42949672960},
                          "temperature": {"average": 61.0}},
                  "cpu": {"utilization": {"average": 10.0}},
                  "scaling": {"currentInstances": 2, "targetInstances": 3,
                              "events": [{"action": "scale_up"}]}},
}


def test_every_family_passes_promtool() -> None:
    text = formats.prometheus_text(DOC, {100: 3, 300: 2})
    check_metrics(text)
    assert text.count("# HELP vitals_endpoint_latency_quantile_seconds ") == 1
    assert "vitals_endpoint_gpu_temperature_celsius{" in text
    assert "vitals_endpoint_gpu_memory_bytes{" in text
    assert 'vitals_endpoint_cache_requests_total{endpoint_id="21",timeframe="1h",result="hit"} 2' \
        in text


def test_no_requests_still_passes_promtool() -> None:
    doc = {**DOC, "summary": {**DOC["summary"], "successfulExecutions": 0,
                              "failedExecutions": 0, "p50Latency": None, "p95Latency": None,
                              "p99Latency": None, "successRate": None}}
    check_metrics(formats.prometheus_text(doc, {}))


def test_a_family_is_written_once() -> None:
    ex = formats._Exposition({})
    ex.family("x", "gauge", "h", [({}, 1.0)])
    with pytest.raises(ValueError, match="written twice"):
        ex.family("x", "gauge", "h", [({}, 2.0)])
