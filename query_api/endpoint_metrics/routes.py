"""Endpoint metrics (TensorOne shapes): `GET /v2/endpoints/{endpointId}/metrics`,
`POST /v2/endpoints/metrics/batch`, and the per-endpoint price configuration
`GET|PUT /v2/endpoints/{endpointId}/pricing`.

Order of checks: API key (401) → per-key rate limit (429) → parameters (400) → endpoint
ownership (403/404) → response cache → ClickHouse. For an endpoint id, the document of the key's
own tenant is read while the ownership check runs and answered only once it passed
(`_resolved_document`).
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import PlainTextResponse, Response

from pipeline.storage.keys import ApiKey
from query_api.auth import require_role
from query_api.context import ApiContext
from query_api.deps import BodyCaller, Caller, Ctx
from query_api.endpoint_metrics import formats
from query_api.endpoint_metrics.params import DECLARED, FORMATS, MetricsQuery, parse_query
from query_api.endpoint_metrics.sections import Pricing, iso
from query_api.endpoint_metrics.series_cache import SeriesCache
from query_api.endpoint_metrics.service import Computed, build_document, csv_table
from query_api.endpoint_metrics.store import load_pricing, save_pricing
from query_api.entities import Scope, resolve_endpoint
from query_api.errors import ApiError, bad_param
from query_api.params import get_number, get_str
from query_api.query_params import declare
from query_api.ratelimit import RateLimiter, TtlCache
from query_api.responses import JsonResponse

__all__ = ["MAX_BATCH", "router"]

router = APIRouter(tags=["endpoint metrics"])

MAX_BATCH = 50
MAX_CACHE_S = 300.0
MAX_PRICE = 1_000_000.0  # per GPU-second, request or GB
MAX_BUDGET = 1e15
_PRICE = {"type": "number", "minimum": 0, "maximum": MAX_PRICE, "default": 0}
_PRICING_DOC = {"requestBody": {"required": False, "content": {"application/json": {"schema": {
    "type": "object",
    "properties": {
        "gpuSecondPrice": _PRICE, "requestPrice": _PRICE, "gbTransferredPrice": _PRICE,
        "monthlyBudget": {"type": ["number", "null"], "exclusiveMinimum": 0,
                          "maximum": MAX_BUDGET},
        "currency": {"type": "string", "pattern": "^[A-Za-z]{1,8}$", "default": "USD"},
        "api_key": {"type": "string", "description": "API key (or Authorization: Bearer)"},
    },
}}}}}
_SUMMARY_KEYS = ("totalExecutions", "successRate", "averageLatency", "p95Latency",
                 "p99Latency", "totalCost", "coldStartRate")


class State:
    """Per app, built by `create_app`: the per-key rate limit, the response cache and the
    rollup series cache."""

    def __init__(self, ctx: ApiContext) -> None:
        s = ctx.settings
        self.limiter = RateLimiter(s.metrics_rate_limit, s.metrics_rate_window_s, ctx.clock)
        self.cache = TtlCache(ctx.clock)
        self.series = SeriesCache(s.metrics_series_cache_buckets)
        #: documents being recomputed ahead of their expiry (`_refresh_ahead`), by cache key
        self.refreshing: dict[tuple[Any, ...], asyncio.Task[Computed]] = {}
        #: bumped when prices change: a computation started before does not fill the cache
        self.generation = 0
        #: documents computed from ClickHouse by this app (not answered from the response
        #: cache, nor shared with an identical computation in flight)
        self.computations = 0


async def _state(request: Request) -> State:
    st: State = request.app.state.endpoint_metrics
    return st


FamilyState = Annotated[State, Depends(_state)]


def cache_ttl(ctx: ApiContext, q: MetricsQuery) -> float:
    """VITALS_METRICS_CACHE_S at 1m granularity, scaled by granularity, at most 300 s."""
    return min(MAX_CACHE_S, ctx.settings.metrics_cache_s * q.step_s / 60)


def _endpoint_id(ref: str) -> int | None:
    """The id an endpoint reference names, or None for a name."""
    if ref.isascii() and ref.isdigit() and len(ref) <= 20:
        ident = int(ref)
        if ident >= 2**64:
            raise bad_param("endpointId", ref, "endpointId is out of range")
        return ident
    return None


async def _resolve(ctx: ApiContext, key: ApiKey, ref: str) -> tuple[Scope, str]:
    ref = ref.strip()
    ident = _endpoint_id(ref)
    if ident is not None:
        return await resolve_endpoint(ctx.store, key, endpoint_id=ident, name=None,
                                      reads=ctx.reads)
    if not ref or len(ref) > 128:
        raise bad_param("endpointId", ref[:50], "endpointId must be an id or an endpoint name "
                        "of 1-128 characters")
    return await resolve_endpoint(ctx.store, key, endpoint_id=None, name=ref,
                                  reads=ctx.reads)


async def _resolved_document(ctx: ApiContext, st: State, key: ApiKey, ref: str,
                             q: MetricsQuery) -> tuple[Scope, Computed, bool]:
    """Resolve `ref` (403/404 as `_resolve`) and compute its document.

    For an id, the document of that id in the key's own tenant is computed while the ownership
    check runs: its reads are filtered by that tenant, and it is returned only when the check
    resolves to exactly that scope (otherwise it is dropped, and an error or the other
    tenant's document, for a superadmin, follows as without it)."""
    ident = _endpoint_id(ref.strip())
    if ident is None:
        scope, name = await _resolve(ctx, key, ref)
        c, cached = await _computed(ctx, st, scope, name, q)
        return scope, c, cached
    guess = Scope(key.tenant, ident)
    if st.cache.get(_cache_key(guess, q)) is not None:
        # a kept document: nothing to overlap the check with, and a task of its own would
        # cost the answer another turn of the event loop
        scope, name = await resolve_endpoint(ctx.store, key, endpoint_id=ident, name=None,
                                             reads=ctx.reads)
        c, cached = await _computed(ctx, st, scope, name, q)
        return scope, c, cached
    early = asyncio.create_task(_computed(ctx, st, guess, "", q))
    early.add_done_callback(lambda t: t.cancelled() or t.exception())
    try:
        scope, name = await resolve_endpoint(ctx.store, key, endpoint_id=ident, name=None,
                                             reads=ctx.reads)
    except BaseException:
        early.cancel()
        raise
    if scope != guess:
        early.cancel()
        c, cached = await _computed(ctx, st, scope, name, q)
    else:
        c, cached = await early
        c.doc["endpoint"] = name
    return scope, c, cached


def _cache_key(scope: Scope, q: MetricsQuery) -> tuple[Any, ...]:
    return (scope.tenant, scope.endpoint_id, q.timeframe, q.granularity, q.sections,
            q.aggregation)


async def _computed(ctx: ApiContext, st: State, scope: Scope, name: str,
                    q: MetricsQuery) -> tuple[Computed, bool]:
    """The scope's document, from the response cache or ClickHouse. `name` ("" while the
    endpoint is still being resolved) is set on the document whenever given."""
    ck = _cache_key(scope, q)
    c: Computed | None = st.cache.get(ck)
    cached = c is not None
    if c is None:
        c = await _compute(ctx, st, ck, scope, name, q)
    else:
        _refresh_ahead(ctx, st, ck, scope, name, q)
    if name:
        c.doc["endpoint"] = name
    return c, cached


async def _compute(ctx: ApiContext, st: State, ck: tuple[Any, ...], scope: Scope, name: str,
                   q: MetricsQuery) -> Computed:
    """The document from ClickHouse (identical computations in flight shared), kept in the
    response cache unless prices changed meanwhile."""
    now, generation = ctx.clock(), st.generation

    async def computed() -> Computed:
        st.computations += 1
        return await build_document(ctx.store, scope, name, q, now,
                                    ctx.settings.liveness_timeout_s, st.series,
                                    ctx.settings.stats_window_s)

    c: Computed = await ctx.reads.get("endpoint_metrics", ck, computed, instant=now,
                                      reuse=False)
    if st.generation == generation:
        st.cache.put(ck, c, cache_ttl(ctx, q))
    return c


def _refresh_ahead(ctx: ApiContext, st: State, ck: tuple[Any, ...], scope: Scope, name: str,
                   q: MetricsQuery) -> None:
    """A kept document past half its lifetime is recomputed in the background, so callers of
    a document asked for all the time never wait on ClickHouse; each answer is still at most
    the cache lifetime old (a document nobody asks for expires)."""
    expires = st.cache.expires_at(ck)
    if expires is None or ck in st.refreshing or expires - ctx.clock() > cache_ttl(ctx, q) / 2:
        return
    task = asyncio.create_task(_compute(ctx, st, ck, scope, name, q))
    st.refreshing[ck] = task

    def landed(t: asyncio.Task[Computed]) -> None:
        st.refreshing.pop(ck, None)
        if not t.cancelled():
            t.exception()  # an error is the next computation's, once the document expires

    task.add_done_callback(landed)


def _query_params(request: Request) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in request.query_params.multi_items():
        if k in out:
            prev = out[k]
            out[k] = [*prev, v] if isinstance(prev, list) else [prev, v]
        else:
            out[k] = v
    return out


@router.get("/v2/endpoints/{endpointId}/metrics",
            summary="Performance, usage, cost and resource metrics of one endpoint",
            openapi_extra=declare(*DECLARED))
async def endpoint_metrics(request: Request, ctx: Ctx, key: Caller, st: FamilyState,
                           endpointId: str) -> Response:
    """Query: `timeframe` (1h, 6h, 24h, 7d, 30d), `granularity` (1m, 5m, 15m, 1h, 1d),
    `metrics` (performance, usage, costs, resources, errors; comma-separated or repeated),
    `format` (json, csv, prometheus), `aggregation` (avg, sum, min, max, p95, p99)."""
    st.limiter.check(key.key_id)
    q = parse_query(_query_params(request), ctx.settings.metrics_max_range)
    scope, c, cached = await _resolved_document(ctx, st, key, endpointId, q)
    headers = {"Cache-Control": f"private, max-age={math.ceil(cache_ttl(ctx, q))}",
               "X-Cache": "HIT" if cached else "MISS",
               "X-Generated-At": c.doc["generatedAt"]}
    if q.format == "csv":
        header, rows = csv_table(c, q)
        fname = f"endpoint-{scope.endpoint_id}-metrics-{q.timeframe}-{q.granularity}.csv"
        return Response(formats.csv_text(header, rows),
                        media_type="text/csv; charset=utf-8; header=present",
                        headers={**headers,
                                 "Content-Disposition": f'attachment; filename="{fname}"'})
    if q.format == "prometheus":
        return PlainTextResponse(formats.prometheus_text(c.doc, c.hist), headers=headers,
                                 media_type="text/plain; version=0.0.4; charset=utf-8")
    return Response(c.json(cached), media_type="application/json", headers=headers)


def _combine(values: list[float], how: str) -> float | None:
    if not values:
        return None
    if how == "avg":
        return sum(values) / len(values)
    if how == "sum":
        return sum(values)
    if how in ("min", "max"):
        return min(values) if how == "min" else max(values)
    ordered = sorted(values)
    q = 0.95 if how == "p95" else 0.99
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@router.post("/v2/endpoints/metrics/batch", summary="Metrics of several endpoints in one call")
async def batch_metrics(ctx: Ctx, call: BodyCaller, st: FamilyState) -> JsonResponse:
    """Body: `endpointIds` (1-50 ids or names), `timeframe`, `granularity`, `metrics`,
    `aggregation`. Counts as one call against the rate limit. Endpoints the key may not read
    are reported in `errors`; `aggregate` combines the summaries with `aggregation`."""
    body, key = call.body, call.key
    st.limiter.check(key.key_id)
    ids = body.get("endpointIds")
    if not isinstance(ids, list) or not ids:
        raise bad_param("endpointIds", ids, "endpointIds must be a non-empty list of endpoint "
                        "ids or names")
    if len(ids) > MAX_BATCH:
        raise bad_param("endpointIds", ids[:10], f"endpointIds lists {len(ids)} endpoints; "
                        f"at most {MAX_BATCH}")
    refs: list[str] = []
    for ref in ids:
        if isinstance(ref, bool) or not isinstance(ref, (int, str)) or \
                (isinstance(ref, int) and ref < 0):
            raise bad_param("endpointIds", ref, "each of endpointIds must be an id or a name")
        refs.append(str(ref))
    if "format" in body and body["format"] != "json":
        raise bad_param("format", body["format"], "the batch route answers in json only",
                        ["json"])
    params: dict[str, Any] = {k: body[k] for k in ("timeframe", "granularity", "metrics",
                                                    "aggregation") if k in body}
    q = parse_query(params, ctx.settings.metrics_max_range, formats=FORMATS[:1])
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for ref in dict.fromkeys(refs):
        try:
            scope, name = await _resolve(ctx, key, ref)
        except ApiError as exc:
            if exc.status not in (400, 403, 404):
                raise
            errors.append({"endpointId": ref, "status": exc.status, "error": exc.code,
                           "message": exc.message, **({"details": exc.details}
                                                      if exc.details else {})})
            continue
        c, _ = await _computed(ctx, st, scope, name, q)
        results.append(c.doc)
    aggregate = {k: _combine([r["summary"][k] for r in results
                              if r["summary"][k] is not None], q.aggregation)
                 for k in _SUMMARY_KEYS}
    return JsonResponse({"timeframe": q.timeframe, "granularity": q.granularity,
                         "aggregation": q.aggregation, "generatedAt": iso(ctx.clock()),
                         "endpoints": results, "errors": errors,
                         "aggregate": {"endpoints": len(results), **aggregate}})


def _pricing_json(scope: Scope, p: Pricing) -> dict[str, Any]:
    return {"endpointId": str(scope.endpoint_id), **p.json()}


@router.get("/v2/endpoints/{endpointId}/pricing", summary="Price configuration and budget")
async def get_pricing(ctx: Ctx, key: Caller, endpointId: str) -> JsonResponse:
    scope, _ = await _resolve(ctx, key, endpointId)
    p = await ctx.store.call(lambda s: load_pricing(s, scope.tenant, scope.endpoint_id))
    return JsonResponse(_pricing_json(scope, p))


@router.put("/v2/endpoints/{endpointId}/pricing", openapi_extra=_PRICING_DOC,
            summary="Set prices (GPU-second, request, GB) and monthly budget (admin)")
async def put_pricing(ctx: Ctx, call: BodyCaller, st: FamilyState, endpointId: str
                      ) -> JsonResponse:
    """Body: `gpuSecondPrice`, `requestPrice`, `gbTransferredPrice` (numbers in [0, 1e6],
    default 0), `monthlyBudget` (number in (0, 1e15], or null/absent for none), `currency`
    (1-8 letters, default USD)."""
    body, key = call.body, call.key
    require_role(key, "admin")
    scope, _ = await _resolve(ctx, key, endpointId)
    prices = []
    for name in ("gpuSecondPrice", "requestPrice", "gbTransferredPrice"):
        v = get_number(body, name, default=0.0, lo=0, hi=MAX_PRICE)
        assert v is not None
        prices.append(v)
    budget = get_number(body, "monthlyBudget", hi=MAX_BUDGET)
    if budget is not None and budget <= 0:
        raise bad_param("monthlyBudget", budget, "monthlyBudget must be > 0 (or null for none)",
                        allowed_range=(0, MAX_BUDGET))
    currency = get_str(body, "currency", default="USD", max_len=8)
    assert currency is not None
    if not (currency.isascii() and currency.isalpha()):
        raise bad_param("currency", currency, "currency must be letters, e.g. USD")
    p = Pricing(prices[0], prices[1], prices[2], budget, currency.upper(), True)
    await ctx.store.call(lambda s: save_pricing(s, scope.tenant, scope.endpoint_id, p,
                                                ctx.clock()))
    st.generation += 1
    st.cache.clear()
    return JsonResponse(_pricing_json(scope, p))
