"""Parameters of the endpoint metrics routes and the time window they select. Pure.

Window convention: with granularity `g` (seconds) and timeframe `T`, the response covers the
`T / g` buckets of width `g` (UTC-aligned) that end with the bucket holding `now`:
`end = (floor(now / g) + 1) * g`, `start = end - T`. Point `k` covers `[start + k·g,
start + (k+1)·g)`; the last point is the bucket in progress. Totals are sums over the points.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from query_api.errors import bad_param
from query_api.query_params import QueryParam

__all__ = [
    "AGGREGATIONS",
    "DECLARED",
    "FORMATS",
    "GRANULARITIES",
    "SECTIONS",
    "TIMEFRAMES",
    "MetricsQuery",
    "Window",
    "parse_query",
    "window_for",
]

TIMEFRAMES: dict[str, int] = {"1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800,
                              "30d": 2592000}
GRANULARITIES: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}
SECTIONS = ("performance", "usage", "costs", "resources", "errors")
FORMATS = ("json", "csv", "prometheus")
AGGREGATIONS = ("avg", "sum", "min", "max", "p95", "p99")
DEFAULT_TIMEFRAME = "24h"
DEFAULT_GRANULARITY = "15m"

#: The query parameters of `GET /v2/endpoints/{endpointId}/metrics`, as `/openapi.json` lists
#: them; `parse_query` enforces the same sets.
DECLARED = (
    QueryParam("timeframe", "string", "how far back the window reaches", enum=tuple(TIMEFRAMES),
               extra={"default": DEFAULT_TIMEFRAME}),
    QueryParam("granularity", "string", "bucket width; no coarser than the timeframe and "
               "within its maximum range (default 15m, or the finest that serves the "
               "timeframe)", enum=tuple(GRANULARITIES)),
    QueryParam("metrics", "array", "sections to include (repeat the parameter, or separate "
               "with commas); default: all", enum=SECTIONS, max_items=len(SECTIONS) * 4),
    QueryParam("format", "string", "response format", enum=FORMATS, extra={"default": "json"}),
    QueryParam("aggregation", "string", "how points combine into the summary",
               enum=AGGREGATIONS, extra={"default": "avg"}),
)


@dataclass(frozen=True)
class MetricsQuery:
    timeframe: str
    granularity: str
    sections: tuple[str, ...]
    format: str
    aggregation: str

    @property
    def timeframe_s(self) -> int:
        return TIMEFRAMES[self.timeframe]

    @property
    def step_s(self) -> int:
        return GRANULARITIES[self.granularity]

    def cache_key(self) -> tuple[str, ...]:
        return (self.timeframe, self.granularity, ",".join(self.sections), self.format,
                self.aggregation)


@dataclass(frozen=True)
class Window:
    start: int
    end: int
    step: int
    now: float

    @property
    def points(self) -> list[int]:
        return list(range(self.start, self.end, self.step))

    @property
    def horizon_ms(self) -> int:
        """Where observed time stops: the window end or now, whichever is earlier."""
        return min(self.end * 1000, int(self.now * 1000))


def window_for(q: MetricsQuery, now: float) -> Window:
    g = q.step_s
    end = (math.floor(now) // g + 1) * g
    return Window(end - q.timeframe_s, end, g, now)


def allowed_granularities(timeframe: str, limits: Sequence[tuple[str, int]]) -> list[str]:
    """Granularities that may serve `timeframe`: no coarser than it, within their max range."""
    span = TIMEFRAMES[timeframe]
    lim = dict(limits)
    return [g for g, width in GRANULARITIES.items()
            if width <= span and span <= lim.get(g, span)]


def _one(params: Mapping[str, Any], name: str) -> Any:
    v = params.get(name)
    if isinstance(v, list):
        if len(v) != 1:
            raise bad_param(name, v, f"{name} is given {len(v)} times; give it once")
        return v[0]
    return v


def _choice(params: Mapping[str, Any], name: str, allowed: Sequence[str],
            default: str | None) -> str | None:
    v = _one(params, name)
    if v is None or v == "":
        return default
    if not isinstance(v, str) or v not in allowed:
        raise bad_param(name, v, f"Invalid {name} specified: {name} must be one of "
                        f"{', '.join(allowed)}", allowed)
    return v


def _sections(params: Mapping[str, Any]) -> tuple[str, ...]:
    raw = params.get("metrics")
    if raw is None or raw == "" or raw == []:
        return SECTIONS
    items = raw if isinstance(raw, list) else [raw]
    if len(items) > len(SECTIONS) * 4:
        raise bad_param("metrics", items[:10], "metrics lists too many values", SECTIONS)
    chosen: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise bad_param("metrics", item, "metrics must be strings", SECTIONS)
        for part in item.split(","):
            name = part.strip()
            if name not in SECTIONS:
                raise bad_param("metrics", name, f"Invalid metrics specified: each of metrics "
                                f"must be one of {', '.join(SECTIONS)}", SECTIONS)
            if name not in chosen:
                chosen.append(name)
    return tuple(s for s in SECTIONS if s in chosen)


def parse_query(params: Mapping[str, Any], limits: Sequence[tuple[str, int]], *,
                formats: Sequence[str] = FORMATS) -> MetricsQuery:
    """Validate the query; every failure is a 400 naming the parameter and its allowed values.

    `granularity` defaults to 15m, or, when 15m cannot serve the timeframe (30d), to the finest
    granularity that can. An explicit granularity coarser than the timeframe or beyond its
    maximum range is a 400 whose allowedValues are the granularities valid for the timeframe.
    """
    timeframe = _choice(params, "timeframe", list(TIMEFRAMES), DEFAULT_TIMEFRAME)
    assert timeframe is not None
    valid = allowed_granularities(timeframe, limits)
    gran = _choice(params, "granularity", list(GRANULARITIES), None)
    if gran is None:
        gran = DEFAULT_GRANULARITY if DEFAULT_GRANULARITY in valid else valid[0]
    elif gran not in valid:
        max_s = dict(limits).get(gran)
        why = (f"granularity {gran} is coarser than timeframe {timeframe}"
               if GRANULARITIES[gran] > TIMEFRAMES[timeframe]
               else f"granularity {gran} serves at most {max_s and max_s // 3600} h")
        raise bad_param("granularity", gran, f"Invalid granularity specified: {why}; allowed "
                        f"for timeframe {timeframe}: {', '.join(valid)}", valid)
    fmt = _choice(params, "format", formats, "json")
    agg = _choice(params, "aggregation", AGGREGATIONS, "avg")
    assert fmt is not None and agg is not None
    return MetricsQuery(timeframe, gran, _sections(params), fmt, agg)
