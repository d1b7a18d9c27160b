"""The Endpoints page's rows: for every endpoint the caller may see, the numbers the public
routes give, computed by the same code so the two never disagree.

- reqrate, reliable, nworkers, capacity, curload, totreqs: `stats.current_stats`, exactly as
  `POST /get_endpoint_stats/` answers them;
- p95 latency, requests and the sparkline: the `performance` section of
  `GET /v2/endpoints/{id}/metrics?timeframe=1h&granularity=1m` (`build_document`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from query_api.context import ApiContext
from query_api.endpoint_metrics.params import MetricsQuery, parse_query, window_for
from query_api.endpoint_metrics.sections import Sums, iso
from query_api.endpoint_metrics.series_cache import SeriesCache
from query_api.endpoint_metrics.service import build_document
from query_api.entities import Scope
from query_api.ui.store import EndpointRow
from query_api.vast import store as stats

__all__ = ["SPARK_POINTS", "cold_start_points", "cold_starts", "endpoint_overview", "row_json"]

#: the sparkline's points: requests/s per minute over the last half hour
SPARK_POINTS = 30
#: endpoints computed at once (each a handful of ClickHouse reads)
CONCURRENCY = 4


def row_json(row: EndpointRow, current: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """One table row from the endpoint's current stats and its 1h/1m performance document."""
    summary = doc["summary"]
    series = doc.get("performance", {}).get("throughput", {}).get("timeSeries", [])
    p95 = summary.get("p95Latency")
    return {
        "tenant": row.tenant, "id": row.endpoint_id, "name": row.name,
        "lastSeen": row.last_seen_ms / 1000,
        "reqrate": current["reqrate"], "reliable": current["reliable"],
        "nworkers": current["nworkers"], "capacity": current["capacity"],
        "curload": current["curload"], "totreqs": current["totreqs"],
        "p95LatencyMs": None if p95 is None else p95 * 1000,
        "requests1h": summary["totalExecutions"],
        "spark": [p["requestsPerSecond"] for p in series[-SPARK_POINTS:]],
    }


async def endpoint_overview(ctx: ApiContext, rows: list[EndpointRow],
                            series: SeriesCache | None) -> list[dict[str, Any]]:
    s = ctx.settings
    now = ctx.clock()
    q = parse_query({"timeframe": "1h", "granularity": "1m", "metrics": "performance"},
                    s.metrics_max_range)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(row: EndpointRow) -> dict[str, Any]:
        scope = Scope(row.tenant, row.endpoint_id)
        async with gate:
            current = await stats.current_stats(ctx.store, scope, now=now,
                                                window_s=s.stats_window_s,
                                                liveness_s=s.liveness_timeout_s)
            computed = await build_document(ctx.store, scope, row.name, q, now,
                                            s.liveness_timeout_s, series)
        return row_json(row, current, computed.doc)

    return list(await asyncio.gather(*(one(r) for r in rows)))


def cold_start_points(points: dict[int, Sums], starts: list[int]) -> list[dict[str, Any]]:
    """Per window point: requests, cold starts and their seconds (0 where nothing ran)."""
    out = []
    for t in starts:
        s = points.get(t)
        out.append({"timestamp": iso(t), "requests": s.requests if s else 0,
                    "coldStarts": s.cold_starts if s else 0,
                    "coldStartSeconds": s.cold_start_ms_sum / 1000 if s else 0.0})
    return out


async def cold_starts(ctx: ApiContext, scope: Scope, name: str, q: MetricsQuery,
                      series: SeriesCache | None) -> dict[str, Any]:
    """Cold starts per point of the metrics window of `q` (the metrics document gives only
    their totals), from the same rollup reads as `GET /v2/endpoints/{id}/metrics`."""
    now = ctx.clock()
    computed = await build_document(ctx.store, scope, name, q, now,
                                    ctx.settings.liveness_timeout_s, series)
    return {"endpointId": str(scope.endpoint_id), "timeframe": q.timeframe,
            "granularity": q.granularity,
            "timeSeries": cold_start_points(computed.points, window_for(q, now).points)}
