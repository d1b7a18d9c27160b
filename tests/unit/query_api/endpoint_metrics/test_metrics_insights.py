"""query_api.endpoint_metrics.insights: each insight fires from its rule, and only then."""

from __future__ import annotations

from query_api.endpoint_metrics.insights import RULES, insights, recommendations


def _doc(**over):
    doc = {
        "performance": {"latency": {"trends": {"hourly": {"trend": "degrading",
                                                          "changePercent": 30.0}}},
                        "errorRates": {"errorRate": 6.0}},
        "coldStarts": {"rate": 0.5},
        "usage": {"requests": {"total": 10, "patterns": {"peakHour": "09:00-10:00",
                                                         "lowestHour": "03:00-04:00"}},
                  "compute": {"utilizationRate": 40.0}},
        "costs": {"trends": {"daily": {"trend": "increasing", "changePercent": 12.4}},
                  "budgetAnalysis": {"onTrack": False, "projectedTotal": 1600.0,
                                     "monthlyBudget": 1500.0}},
    }
    doc.update(over)
    return doc


def test_each_rule_fires() -> None:
    got = insights(_doc())
    assert [(i["type"], i["severity"]) for i in got["performance"]] == [
        ("latency_trend", "high"), ("error_rate", "medium")]
    assert [(i["type"], i["severity"]) for i in got["usage"]] == [
        ("usage_pattern", "info"), ("low_utilization", "warning")]
    assert [(i["type"], i["severity"]) for i in got["costs"]] == [
        ("cost_trend", "warning"), ("budget", "high")]
    assert got["costs"][0]["message"] == "Daily cost trending upward by 12.4%"
    assert all(i["rule"] == RULES[i["type"]] for area in got.values() for i in area)


def test_nothing_fires_without_its_input() -> None:
    quiet = insights({"performance": {"latency": {"trends": {"hourly": {
        "trend": "stable", "changePercent": 1.0}}}, "errorRates": {"errorRate": None}}})
    assert quiet == {"performance": [], "usage": [], "costs": []}


def test_recommendations_carry_how_to_act() -> None:
    recs = recommendations([{"category": "cold_starts", "savings": 3.23, "rule": "r",
                             "description": "Keep warm workers", "effort": "low"}])
    assert recs[0]["category"] == "cold_starts" and recs[0]["savings"] == 3.23
    assert recs[0]["implementation"].startswith("Keep warm workers")
