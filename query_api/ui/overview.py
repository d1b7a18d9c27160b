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

from query_api import stats
from query_api.context import ApiContext
from query_api.metrics_params import parse_query
from query_api.metrics_service import build_document
from query_api.series_cache import SeriesCache
from query_api.stats import Scope
from query_api.ui.store import EndpointRow

__all__ = ["SPARK_POINTS", "endpoint_overview", "row_json"]

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
