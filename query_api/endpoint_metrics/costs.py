"""The `costs` section: totals, breakdown, series, daily trend, budget, suggestions. Pure.

Cost of any set of requests = gpu_seconds × gpuSecondPrice + requests × requestPrice
+ bytes_out / 1e9 × gbTransferredPrice, with the endpoint's current price configuration
(prices are not versioned: a change re-prices history).

Every optimisation suggestion names the `rule` that produced it; the rules and their savings
formulas are listed in `RULES` (and in docs/endpoint-metrics.md).
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from typing import Any

from query_api.endpoint_metrics.insights import recommendations
from query_api.endpoint_metrics.sections import Pricing, Sums, iso

__all__ = ["RULES", "Budget", "breakdown", "budget", "costs", "daily_cost_trend", "suggestions"]

COLD_START_RATE_PCT = 1.0
UTILIZATION_PCT = 50.0
FAILURE_RATE_PCT = 5.0
NETWORK_SHARE_PCT = 25.0

RULES = {
    "cold_starts": f"coldStartRate > {COLD_START_RATE_PCT}%: savings = cold-start seconds × "
                   "gpuSecondPrice",
    "idle_time": f"utilizationRate < {UTILIZATION_PCT}% of live worker time: savings = idle "
                 "worker seconds × gpuSecondPrice",
    "failed_requests": f"failure rate > {FAILURE_RATE_PCT}%: savings = failed share × total cost",
    "data_transfer": f"network cost > {NETWORK_SHARE_PCT}% of total: savings = 50% of network "
                     "cost (response compression)",
}


@dataclass(frozen=True)
class Budget:
    month_start: int
    month_end: int
    used: float
    now: float


def month_bounds(now: float) -> tuple[int, int]:
    """[start, end) of the UTC calendar month holding `now`, as unix seconds."""
    t = time.gmtime(now)
    start = calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))
    days = calendar.monthrange(t.tm_year, t.tm_mon)[1]
    return start, start + days * 86400


def budget(pricing: Pricing, b: Budget) -> dict[str, Any] | None:
    """Month-to-date spend against the monthly budget, projected linearly to month end."""
    if pricing.monthly_budget is None:
        return None
    elapsed = max(1.0, b.now - b.month_start)
    projected = b.used / elapsed * (b.month_end - b.month_start)
    return {
        "monthlyBudget": pricing.monthly_budget,
        "currentUsage": b.used,
        "remainingBudget": pricing.monthly_budget - b.used,
        "percentUsed": 100 * b.used / pricing.monthly_budget if pricing.monthly_budget else None,
        "projectedTotal": projected,
        "onTrack": projected <= pricing.monthly_budget,
        "burnRate": b.used / (elapsed / 86400),
        "periodStart": iso(b.month_start),
        "periodEnd": iso(b.month_end),
    }


def daily_cost_trend(last: Sums, prev: Sums, pricing: Pricing) -> dict[str, Any]:
    """Cost of the last complete 24 h against the 24 h before (5% band is stable)."""
    a, b = pricing.cost(last), pricing.cost(prev)
    change = 100 * (a - b) / b if b else None
    trend = None
    if change is not None:
        trend = "stable" if abs(change) < 5 else "increasing" if change > 0 else "decreasing"
    return {"average": a, "previous": b, "trend": trend, "changePercent": change,
            "projection": {"monthly": a * 30, "basis": "last complete 24 h × 30"}}


def suggestions(total: Sums, pricing: Pricing, worker_seconds: float | None
                ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    n = total.requests
    if n and 100 * total.cold_starts / n > COLD_START_RATE_PCT:
        secs = total.cold_start_ms_sum / 1000
        out.append({"category": "cold_starts", "rule": RULES["cold_starts"],
                    "description": f"Keep warm workers: {total.cold_starts} cold starts "
                                   f"({100 * total.cold_starts / n:.2f}% of requests) "
                                   f"added {secs:.1f} s",
                    "savings": secs * pricing.gpu_second, "effort": "low"})
    busy = total.latency_sum / 1000
    if worker_seconds and 100 * busy / worker_seconds < UTILIZATION_PCT:
        idle = worker_seconds - busy
        out.append({"category": "idle_time", "rule": RULES["idle_time"],
                    "description": f"Scale down or autoscale: workers were busy "
                                   f"{100 * busy / worker_seconds:.1f}% of their live time",
                    "savings": idle * pricing.gpu_second, "effort": "medium"})
    if n and 100 * total.failures / n > FAILURE_RATE_PCT:
        out.append({"category": "failed_requests", "rule": RULES["failed_requests"],
                    "description": f"Fix failing requests: {100 * total.failures / n:.2f}% "
                                   f"failed but were billed",
                    "savings": total.failures / n * pricing.cost(total), "effort": "medium"})
    cost = pricing.cost(total)
    net = pricing.network_cost(total)
    if cost and 100 * net / cost > NETWORK_SHARE_PCT:
        out.append({"category": "data_transfer", "rule": RULES["data_transfer"],
                    "description": f"Compress responses: transfer is {100 * net / cost:.1f}% "
                                   f"of cost", "savings": net * 0.5, "effort": "low"})
    return out


def breakdown(total: Sums, pricing: Pricing) -> dict[str, dict[str, Any]]:
    """Each priced category as the reference's `{amount, percentage, details}`: the amount, its
    percent of the total (null when the total is 0) and the quantity and rate it came from.
    The reference's `storage` and `other` categories have no data behind them and are left
    out (docs/endpoint-metrics.md)."""
    amounts = {"compute": pricing.compute_cost(total), "requests": pricing.request_cost(total),
               "network": pricing.network_cost(total)}
    whole = sum(amounts.values())
    details: dict[str, dict[str, Any]] = {
        "compute": {"gpuSeconds": total.gpu_seconds, "gpuHours": total.gpu_seconds / 3600,
                    "rate": pricing.gpu_second, "rateUnit": "per GPU-second"},
        "requests": {"requests": total.requests, "rate": pricing.request,
                     "rateUnit": "per request"},
        "network": {"egressBytes": total.bytes_out, "egress": amounts["network"],
                    "rate": pricing.gb, "rateUnit": "per GB sent"},
    }
    return {k: {"amount": v, "percentage": 100 * v / whole if whole else None,
                "details": details[k]} for k, v in amounts.items()}


def _cost_series(points: dict[int, Sums], pricing: Pricing) -> list[dict[str, Any]]:
    """Per point: compute, request and network cost and their sum, the arithmetic of
    `Pricing.cost` inline (a day at 1m is 1,440 points)."""
    g, r, b = pricing.gpu_second, pricing.request, pricing.gb
    out = []
    for t, s in sorted(points.items()):
        compute, requests, network = s.gpu_seconds * g, s.requests * r, s.bytes_out / 1e9 * b
        out.append({"timestamp": iso(t), "cost": compute + requests + network,
                    "computeCost": compute, "requestCost": requests, "networkCost": network})
    return out


def costs(points: dict[int, Sums], total: Sums, pricing: Pricing, trend: dict[str, Any] | None,
          budget_json: dict[str, Any] | None, worker_seconds: float | None) -> dict[str, Any]:
    found = suggestions(total, pricing, worker_seconds)
    return {
        "currency": pricing.currency,
        "pricing": pricing.json(),
        "total": pricing.cost(total),
        "breakdown": breakdown(total, pricing),
        "timeSeries": _cost_series(points, pricing),
        # `projection` also at `trends` level: where the reference's SDK examples read it
        "trends": {"daily": trend, "projection": trend["projection"]} if trend is not None
        else {},
        "budgetAnalysis": budget_json,
        "optimization": {"potentialSavings": sum(s["savings"] for s in found),
                         "totalPotentialSavings": sum(s["savings"] for s in found),
                         "suggestions": found,
                         "recommendations": recommendations(found)},
    }
