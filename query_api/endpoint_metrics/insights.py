"""The `insights` of an endpoint metrics document: findings read off its own sections, each from a
stated rule (`RULES`). Pure: a function of the document.

An insight is `{type, severity, message, recommendation, rule}` (plus `timestamp` when it is
about an instant). Severities: `info`, `warning`, `medium`, `high`. Only sections the document
holds produce insights; a finding whose input is null (no requests, no trend) is not made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["IMPLEMENTATION", "RULES", "insights", "recommendations"]

ERROR_RATE_PCT = 5.0
COLD_START_RATE_PCT = 1.0
LOW_UTILIZATION_PCT = 50.0
HIGH_CHANGE_PCT = 25.0

RULES = {
    "latency_trend": "latency.trends.hourly.trend is degrading (the last complete hour's mean "
                     "latency ≥ 5% above the hour before); high from +25%",
    "error_rate": f"errorRates.errorRate > {ERROR_RATE_PCT}%; high above "
                  f"{2 * ERROR_RATE_PCT}%",
    "cold_starts": f"coldStarts.rate > {COLD_START_RATE_PCT}%",
    "usage_pattern": "usage.requests.patterns: the UTC hours with the most and fewest requests",
    "low_utilization": f"usage.compute.utilizationRate < {LOW_UTILIZATION_PCT}%",
    "cost_trend": "costs.trends.daily.trend is increasing (the last complete 24 h ≥ 5% above "
                  "the 24 h before); high from +25%",
    "budget": "costs.budgetAnalysis.onTrack is false (projected month total above the budget)",
}

#: How to act on each cost suggestion category (`metrics_costs.suggestions`).
IMPLEMENTATION = {
    "cold_starts": "Keep warm workers (a minimum of active workers, e.g. vast.ai min_load)",
    "idle_time": "Scale on load: lower the minimum of workers or let the autoscaler stop idle "
                 "ones",
    "failed_requests": "Fix the failing requests (see performance.errorRates.breakdown)",
    "data_transfer": "Compress responses (gzip or zstd) before they are sent",
}


#: A rule's finding: (severity, message, recommendation); None when the rule does not fire.
Finding = tuple[str, str, str] | None


def _latency_trend(doc: Mapping[str, Any]) -> Finding:
    hourly = doc.get("performance", {}).get("latency", {}).get("trends", {}).get("hourly", {})
    change = hourly.get("changePercent")
    if hourly.get("trend") == "degrading" and change is not None:
        return ("high" if change >= HIGH_CHANGE_PCT else "medium",
                f"Mean latency rose {change:.1f}% in the last complete hour against the hour "
                "before", "Check the workers' load and queue time; add capacity or warm workers")
    return None


def _error_rate(doc: Mapping[str, Any]) -> Finding:
    rate = doc.get("performance", {}).get("errorRates", {}).get("errorRate")
    if rate is not None and rate > ERROR_RATE_PCT:
        return ("high" if rate > 2 * ERROR_RATE_PCT else "medium",
                f"{rate:.2f}% of requests failed", "See errorRates.breakdown for the failing class")
    return None


def _cold_starts(doc: Mapping[str, Any]) -> Finding:
    cold = doc.get("coldStarts", {}).get("rate")
    if cold is not None and cold > COLD_START_RATE_PCT:
        return "medium", f"{cold:.2f}% of requests waited for a cold start", "Keep warm workers"
    return None


def _usage_pattern(usage: Mapping[str, Any]) -> Finding:
    patterns = usage["requests"]["patterns"]
    if patterns["peakHour"] is not None and usage["requests"]["total"]:
        return ("info", f"Most requests arrive {patterns['peakHour']} UTC, fewest "
                f"{patterns['lowestHour']}",
                "Plan capacity for the peak hour; scale down in the quiet one")
    return None


def _low_utilization(usage: Mapping[str, Any]) -> Finding:
    util = usage["compute"]["utilizationRate"]
    if util is not None and util < LOW_UTILIZATION_PCT:
        return ("warning", f"Workers were busy {util:.1f}% of their live time",
                "Fewer or smaller workers would serve the same load")
    return None


def _cost_trend(costs: Mapping[str, Any]) -> Finding:
    daily = costs.get("trends", {}).get("daily", {})
    change = daily.get("changePercent")
    if daily.get("trend") == "increasing" and change is not None:
        return ("high" if change >= HIGH_CHANGE_PCT else "warning",
                f"Daily cost trending upward by {change:.1f}%",
                "Review usage patterns and the optimization suggestions")
    return None


def _budget(costs: Mapping[str, Any]) -> Finding:
    budget = costs.get("budgetAnalysis")
    if budget and not budget["onTrack"]:
        return ("high", f"Projected month total {budget['projectedTotal']:.2f} exceeds the "
                f"budget {budget['monthlyBudget']:.2f}", "Lower cost or raise the monthly budget")
    return None


Rule = Callable[[Mapping[str, Any]], Finding]

#: Each area: the document section its rules read ("" for the whole document; an area whose
#: section is absent or empty has no insights) and its rules, by `RULES` key, in order.
_AREAS: dict[str, tuple[str, tuple[tuple[str, Rule], ...]]] = {
    "performance": ("", (("latency_trend", _latency_trend), ("error_rate", _error_rate),
                         ("cold_starts", _cold_starts))),
    "usage": ("usage", (("usage_pattern", _usage_pattern),
                        ("low_utilization", _low_utilization))),
    "costs": ("costs", (("cost_trend", _cost_trend), ("budget", _budget))),
}


def _area(doc: Mapping[str, Any], section: str, rules: tuple[tuple[str, Rule], ...]
          ) -> list[dict[str, Any]]:
    read = doc.get(section) if section else doc
    if not read:
        return []
    return [{"type": kind, "severity": found[0], "message": found[1],
             "recommendation": found[2], "rule": RULES[kind]}
            for kind, rule in rules if (found := rule(read)) is not None]


def insights(doc: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Insights per area (performance, usage, costs) from the document's sections."""
    return {area: _area(doc, section, rules) for area, (section, rules) in _AREAS.items()}


def recommendations(suggestions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cost suggestions in the reference's recommendation shape: category, savings,
    description, implementation (and the rule that fired)."""
    return [{"category": s["category"], "savings": s["savings"],
             "description": s["description"], "implementation": IMPLEMENTATION[s["category"]],
             "rule": s["rule"]} for s in suggestions]
