"""`POST /get_endpoint_stats/` and `POST /get_autogroup_stats/` (Vast.ai shapes)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from query_api.context import ApiContext
from query_api.deps import BodyCaller, Ctx
from query_api.entities import Scope, resolve_autogroup, resolve_endpoint
from query_api.errors import bad_param
from query_api.params import get_choice, get_int, get_number, get_str
from query_api.query_params import MAX_UNIX_S
from query_api.responses import JsonResponse
from query_api.vast import store as stats
from query_api.windows import MAX_POINTS, default_step, point_count, sample_points

__all__ = ["router"]

router = APIRouter(tags=["stats"])

MAX_ID = 9_007_199_254_740_991  # ids are JSON-safe integers (schemas/request.json)
MAX_TS = MAX_UNIX_S  # 2100-01-01: ClickHouse DateTime ends in 2106

_BODY_DOC = {
    "requestBody": {"content": {"application/json": {"schema": {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "minimum": 0, "maximum": MAX_ID,
                   "description": "endpoint group (or autogroup) id"},
            "endpoint": {"type": "string", "maxLength": 128,
                         "description": "endpoint group name (instead of id)"},
            "api_key": {"type": "string", "description": "API key (or Authorization: Bearer)"},
            "metric_name": {"type": "string", "enum": list(stats.METRICS)},
            "t1": {"type": "number", "minimum": 0, "maximum": MAX_TS,
                   "description": "timeseries start, unix seconds"},
            "t2": {"type": "number", "minimum": 0, "maximum": MAX_TS,
                   "description": "timeseries end (exclusive), unix seconds"},
            "step": {"type": "integer", "minimum": 1, "maximum": MAX_TS,
                     "description": "seconds between points"},
        },
    }}}, "required": True},
}


async def _respond(ctx: ApiContext, body: dict[str, Any], scope: Scope, ident: int,
                   name: str) -> dict[str, Any]:
    s = ctx.settings
    metric = get_choice(body, "metric_name", stats.METRICS)
    if metric is None:
        for extra in ("t1", "t2", "step"):
            if extra in body:
                raise bad_param("metric_name", None,
                                f"metric_name is required with {extra}", stats.METRICS)
        now = ctx.clock()
        out = await ctx.reads.get(
            "stats", (scope, s.stats_window_s, s.liveness_timeout_s),
            lambda: stats.current_stats(ctx.store, scope, now=now, window_s=s.stats_window_s,
                                        liveness_s=s.liveness_timeout_s),
            instant=now)
        return {**out, "endpoint": name, "id": ident}
    t1f = get_number(body, "t1", required=True, lo=0, hi=MAX_TS)
    t2f = get_number(body, "t2", required=True, lo=0, hi=MAX_TS)
    assert t1f is not None and t2f is not None
    t1, t2 = int(t1f), int(t2f)
    if t2 <= t1:
        raise bad_param("t2", t2f, "t2 must be greater than t1")
    step = get_int(body, "step", default=default_step(t1, t2), lo=1, hi=MAX_TS)
    assert step is not None
    npoints = point_count(t1, t2, step)
    if npoints > MAX_POINTS:
        raise bad_param("t2", t2f, f"t2: range {t1}..{t2} at step {step} s gives {npoints} "
                        f"points; at most {MAX_POINTS} (raise step or shorten the range)")
    points = sample_points(t1, t2, step)
    values = await ctx.reads.get(
        "stats_series", (scope, metric, t1, t2, step, s.stats_window_s, s.liveness_timeout_s),
        lambda: stats.timeseries(ctx.store, scope, metric, points, step=step,
                                 window_s=s.stats_window_s, liveness_s=s.liveness_timeout_s))
    return {"endpoint": name, "id": ident, metric: values, "range_len": len(values)}


@router.post("/get_endpoint_stats/", openapi_extra=_BODY_DOC,
             summary="Current stats or a timeseries of one endpoint group")
async def get_endpoint_stats(ctx: Ctx, call: BodyCaller) -> JsonResponse:
    body, key = call.body, call.key
    ident = get_int(body, "id", lo=0, hi=MAX_ID)
    name = get_str(body, "endpoint", max_len=128)
    if ident is None and not name:
        raise bad_param("id", None, "one of id or endpoint is required")
    scope, ep_name = await resolve_endpoint(ctx.store, key, endpoint_id=ident, name=name,
                                           reads=ctx.reads)
    return JsonResponse(await _respond(ctx, body, scope, scope.endpoint_id, ep_name))


@router.post("/get_autogroup_stats/", openapi_extra=_BODY_DOC,
             summary="Current stats or a timeseries of one autogroup")
async def get_autogroup_stats(ctx: Ctx, call: BodyCaller) -> JsonResponse:
    body, key = call.body, call.key
    ident = get_int(body, "id", required=True, lo=0, hi=MAX_ID)
    assert ident is not None
    scope, ep_name = await resolve_autogroup(ctx.store, key, ident, ctx.reads)
    return JsonResponse(await _respond(ctx, body, scope, ident, ep_name))
