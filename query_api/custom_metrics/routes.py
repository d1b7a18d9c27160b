"""Custom metrics reads: `GET /v2/metrics/custom/timeseries` and `GET /v2/metrics/custom/series`.

Timeseries points cover [t, t + step) for t = t1, t1 + step, ... < t2, over the 1-second rows
of `metrics_1s` (FINAL: redelivered messages count once). Aggregations over the matching series
(after tag filters; per group with `group_by`):

- `sum`: sum of values (counters: sample-rate-scaled increments); `count`: samples received;
- `rate`: sum / step, per second (counters);
- `avg`, `min`, `max`: over every sample; `last`: the latest sample (gauges);
- `p50`, `p95`, `p99`: from merged histogram buckets (kinds h, ms, d), within 1% relative error.

A counter and a gauge (or any two kinds) under one name are separate series: `kind` selects
one; without it, a name the tenant has sent under several kinds is a 400 listing them (values
of different kinds are never combined).

Empty points are 0 for sum, count and rate, null otherwise.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from fastapi import APIRouter, Request

from pipeline.statsd.parse import KINDS
from pipeline.storage import sketch
from query_api.auth import authorize
from query_api.context import ApiContext
from query_api.custom_metrics import store
from query_api.custom_metrics.store import MAX_ROWS
from query_api.deps import Caller, Ctx
from query_api.errors import ApiError, bad_param
from query_api.query_params import MAX_UNIX_S, QueryParam, declare
from query_api.responses import JsonResponse
from query_api.windows import MAX_POINTS, default_step, point_count

__all__ = ["AGGREGATIONS", "router"]

router = APIRouter(tags=["custom metrics"])

AGGREGATIONS = ("sum", "count", "rate", "avg", "min", "max", "last", "p50", "p95", "p99")
_QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
MAX_TAG_FILTERS = 16
MAX_GROUPS = 500


TENANT = QueryParam("tenant", "string", "tenant to read (another tenant's needs superadmin); "
                    "default: the key's own", max_length=64)
NAME = QueryParam("name", "string", "metric name", required=True, min_length=1, max_length=200)
AGGREGATION = QueryParam("aggregation", "string", "how samples combine per point",
                         enum=AGGREGATIONS, extra={"default": "sum"})
GROUP_BY = QueryParam("group_by", "string", "tag key: one series per value of this tag",
                      max_length=200)
T1 = QueryParam("t1", "number", "range start, unix seconds (default: t2 - 3600)",
                minimum=0, maximum=MAX_UNIX_S)
T2 = QueryParam("t2", "number", "range end (exclusive), unix seconds (default: now)",
                minimum=0, maximum=MAX_UNIX_S)
STEP = QueryParam("step", "integer", "seconds per point (default: about 720 points)",
                  minimum=1, maximum=MAX_UNIX_S)
TAG = QueryParam("tag", "array", "tag filter key:value (repeat to combine)", min_length=2,
                 max_length=512, max_items=MAX_TAG_FILTERS, pattern="^[^:]+:")
PREFIX = QueryParam("prefix", "string", "metric names starting with this", max_length=200)
SERIES_NAME = QueryParam("name", "string", "metric name", max_length=200)
KIND = QueryParam("kind", "string", "metric kind: c (counter), g (gauge), h (histogram), ms "
                  "(timer), d (distribution); required when the name has several kinds",
                  enum=KINDS)
LIMIT = QueryParam("limit", "integer", "at most this many series", minimum=1, maximum=10_000,
                   extra={"default": 100})


def _tag_filters(values: list[str]) -> list[tuple[str, str]]:
    out = []
    for v in values:
        k, sep, val = v.partition(":")
        if not sep or not k:
            raise bad_param("tag", v, "tag filters read key:value (repeat the parameter to "
                            "combine them)")
        out.append((k, val))
    return out


def _value(agg: str, step: int, count: float, total: float, lo: float, hi: float, last: float,
           hist: dict[int, int]) -> float | None:
    if agg == "sum":
        return total
    if agg == "count":
        return count
    if agg == "rate":
        return total / step
    if not count:
        return None
    if agg == "avg":
        return total / count
    if agg == "min":
        return lo
    if agg == "max":
        return hi
    if agg == "last":
        return last
    return sketch.quantile(hist, _QUANTILES[agg]) if hist else None


@router.get("/v2/metrics/custom/timeseries", summary="Timeseries of one custom metric (reader)",
            openapi_extra=declare(TENANT, NAME, AGGREGATION, GROUP_BY, T1, T2, STEP, TAG,
                                  KIND))
async def custom_timeseries(request: Request, ctx: Ctx, key: Caller) -> JsonResponse:
    q = request.query_params
    tenant = authorize(key, "reader", TENANT.read_str(q))
    name = NAME.read_str(q)
    agg = AGGREGATION.read_str(q, default="sum")
    group_by = GROUP_BY.read_str(q)
    assert name is not None and agg is not None
    now = min(int(ctx.clock()), MAX_UNIX_S)
    t2 = int(T2.read_number(q, default=float(now)) or 0)
    t1 = int(T1.read_number(q, default=float(max(0, t2 - 3600))) or 0)
    if t2 <= t1:
        raise bad_param("t2", t2, "t2 must be greater than t1", allowed_range=(t1 + 1,
                                                                               MAX_UNIX_S))
    step = STEP.read_int(q, default=default_step(t1, t2))
    assert step is not None
    npoints = point_count(t1, t2, step)
    if npoints > MAX_POINTS:
        raise bad_param("step", step, f"range {t1}..{t2} at step {step} s gives {npoints} "
                        f"points; at most {MAX_POINTS} (raise step or shorten the range)",
                        allowed_range=(-(-(t2 - t1) // MAX_POINTS), MAX_UNIX_S))
    filters = _tag_filters(TAG.read_list(q))
    kind = KIND.read_str(q)
    if kind is None:
        kind = await _only_kind(ctx, tenant, name)
    quantile = agg in _QUANTILES
    rows = await store.points(ctx.store, tenant=tenant, name=name, kind=kind, t1=t1, t2=t2,
                              step=step, filters=filters, group_by=group_by,
                              with_hist=quantile)
    if len(rows) > MAX_ROWS:
        raise bad_param("group_by" if group_by else "step", group_by or step,
                        f"the query yields more than {MAX_ROWS} points; raise step, "
                        f"shorten the range or add tag filters")
    seen = sorted({str(x) for row in rows for x in row[-1]})
    if len(seen) > 1:  # the registry had not recorded the second kind yet
        raise _several_kinds(name, seen)
    groups: dict[str, dict[int, float | None]] = {}
    for k, g, count, total, lo, hi, last, h, _ in rows:
        groups.setdefault(g, {})[int(k)] = _value(agg, step, float(count), float(total),
                                                  float(lo), float(hi), float(last),
                                                  _hist(h) if quantile else {})
        if len(groups) > MAX_GROUPS:
            raise bad_param("group_by", group_by, f"more than {MAX_GROUPS} groups; add tag "
                            f"filters or group by a tag with fewer values")
    empty = 0.0 if agg in ("sum", "count", "rate") else None
    series = []
    for g, points in sorted(groups.items()):
        series.append({
            "tags": {group_by: g} if group_by else {},
            "points": [[t1 + i * step, _finite(points.get(i, empty))] for i in range(npoints)],
        })
    return JsonResponse({"name": name, "kind": kind, "tenant": tenant, "aggregation": agg,
                         "t1": t1, "t2": t2, "step": step, "group_by": group_by,
                         "tags": dict(filters), "series": series})


async def _only_kind(ctx: ApiContext, tenant: str, name: str) -> str | None:
    """The one kind the tenant has sent `name` under (None when it has sent none); a 400
    listing the kinds when there are several (the series registry is the record)."""
    kinds = await store.kinds_of(ctx.store, tenant, name)
    if len(kinds) > 1:
        raise _several_kinds(name, kinds)
    return kinds[0] if kinds else None


def _several_kinds(name: str, kinds: list[str]) -> ApiError:
    return bad_param("kind", None, f"metric {name!r} has series of kinds {', '.join(kinds)}; "
                     f"their values are not combined: name one with kind", kinds)


def _hist(h: Any) -> dict[int, int]:
    return {int(b): int(c) for b, c in dict(h).items()}


def _finite(v: float | None) -> float | None:
    return v if v is None or math.isfinite(v) else None


@router.get("/v2/metrics/custom/series", summary="Custom metric series and their tags (reader)",
            openapi_extra=declare(TENANT, SERIES_NAME, PREFIX, LIMIT))
async def custom_series(request: Request, ctx: Ctx, key: Caller) -> JsonResponse:
    q = request.query_params
    tenant = authorize(key, "reader", TENANT.read_str(q))
    name = SERIES_NAME.read_str(q)
    prefix = PREFIX.read_str(q)
    limit = LIMIT.read_int(q, default=100)
    assert limit is not None
    rows = await store.series(ctx.store, tenant, name, prefix, limit)
    return JsonResponse({
        "tenant": tenant,
        "series": [{"name": n, "kind": k, "tags": orjson.loads(sk), "last_seen": ts / 1000}
                   for n, k, sk, ts in rows],
        "count": len(rows),
    })
