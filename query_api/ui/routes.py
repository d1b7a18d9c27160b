"""HTTP of the dashboard: `/` → `/ui`, the app shell and its assets, `/docs` and `/redoc` on
vendored assets, and the dashboard's JSON reads under `/ui/api/`.

The pages and assets are public (they hold no data); every `/ui/api/` read authenticates like
the public routes (`Authorization: Bearer`), and reads the key's own tenant, or every tenant
for a superadmin. These routes stay out of `/openapi.json`: the documented API is the public
routes, which the dashboard calls too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from pipeline.storage.keys import ApiKey
from query_api.auth import require_role
from query_api.context import ApiContext
from query_api.deps import Caller, Ctx
from query_api.endpoint_metrics.params import parse_query
from query_api.endpoint_metrics.series_cache import SeriesCache
from query_api.entities import resolve_endpoint
from query_api.errors import ApiError, bad_param
from query_api.ratelimit import RateLimiter
from query_api.responses import JsonResponse
from query_api.ui import assets, store
from query_api.ui.overview import cold_starts, endpoint_overview

__all__ = ["ASSETS", "router"]

router = APIRouter(include_in_schema=False)

ASSETS = "/ui/assets"
_NO_STORE = {"Cache-Control": "no-store"}
#: the worker list covers heartbeats of the last day
WORKERS_SINCE_S = 86_400
_MAX_ID = 2**64 - 1


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=307)


@router.get("/ui")
@router.get("/ui/")
async def shell() -> Response:
    path = assets.resolve("index.html")
    assert path is not None, "query_api/ui/static/index.html is part of the package"
    return FileResponse(path, media_type=assets.media_type(path),
                        headers={**_NO_STORE, "X-Content-Type-Options": "nosniff"})


@router.get(ASSETS + "/{relative:path}")
async def asset(relative: str) -> Response:
    path = assets.resolve(relative)
    if path is None:
        raise ApiError(404, "NOT_FOUND", f"no dashboard asset {relative[:200]!r}")
    return FileResponse(path, media_type=assets.media_type(path),
                        headers={"Cache-Control": "public, max-age=300",
                                 "X-Content-Type-Options": "nosniff"})


_VENDOR = f"{ASSETS}/vendor"
_FAVICON = f"{_VENDOR}/swagger-ui/favicon-32x32.png"


def _spec_and_title(request: Request, viewer: str) -> tuple[str, str]:
    return request.app.openapi_url or "/openapi.json", f"{request.app.title} — {viewer}"


@router.get("/docs")
async def swagger(request: Request) -> HTMLResponse:
    spec, title = _spec_and_title(request, "Swagger UI")
    return get_swagger_ui_html(
        openapi_url=spec, title=title,
        swagger_js_url=f"{_VENDOR}/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{_VENDOR}/swagger-ui/swagger-ui.css", swagger_favicon_url=_FAVICON,
        # null: no badge fetched from the public validator service
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    spec, title = _spec_and_title(request, "ReDoc")
    return get_redoc_html(openapi_url=spec, title=title,
                          redoc_js_url=f"{_VENDOR}/redoc/redoc.standalone.js",
                          redoc_favicon_url=_FAVICON, with_google_fonts=False)


class OverviewState:
    """Per app, built by `create_app`: the overview's rollup series cache and its per-key
    rate limit (the endpoint metrics route's limit, VITALS_METRICS_RATE_LIMIT, counted
    separately)."""

    def __init__(self, ctx: ApiContext) -> None:
        s = ctx.settings
        self.series = SeriesCache(s.metrics_series_cache_buckets)
        self.limiter = RateLimiter(s.metrics_rate_limit, s.metrics_rate_window_s, ctx.clock)


async def _overview_state(request: Request) -> OverviewState:
    st: OverviewState = request.app.state.ui_overview
    return st


Overview = Annotated[OverviewState, Depends(_overview_state)]


def _endpoint_id(ref: str) -> int:
    if not (ref.isascii() and ref.isdigit() and len(ref) <= 20) or int(ref) > _MAX_ID:
        raise bad_param("endpointId", ref[:50], "endpointId must be an endpoint id",
                        allowed_range=(0, _MAX_ID))
    return int(ref)


def _visible(key: ApiKey) -> str | None:
    """The tenant whose rows the key reads; None: every tenant (superadmin)."""
    return None if key.role == "superadmin" else key.tenant


@router.get("/ui/api/session")
async def session(request: Request, ctx: Ctx, key: Caller) -> JsonResponse:
    """Who the key is, and the server's clock and windows (the pages draw ranges from it)."""
    s = ctx.settings
    return JsonResponse({"tenant": key.tenant, "role": key.role, "keyId": key.key_id,
                         "now": ctx.clock(), "statsWindowSeconds": s.stats_window_s,
                         "livenessSeconds": s.liveness_timeout_s,
                         "vendored": {k: {"version": v, "license": lic}
                                      for k, (v, lic) in assets.VENDORED.items()}},
                        headers=_NO_STORE)


@router.get("/ui/api/endpoints")
async def endpoints(request: Request, ctx: Ctx, key: Caller, st: Overview) -> JsonResponse:
    """Every endpoint the key may read with its current stats, p95 latency over the last
    hour and a requests/s sparkline (see `overview`)."""
    st.limiter.check(key.key_id)  # each call computes every endpoint's metrics document
    rows = await store.endpoints(ctx.store, _visible(key))
    out = await endpoint_overview(ctx, rows, st.series)
    return JsonResponse({"now": ctx.clock(), "endpoints": out,
                         "truncated": len(rows) >= store.MAX_ENDPOINTS}, headers=_NO_STORE)


@router.get("/ui/api/endpoints/{endpointId}/workers")
async def workers(request: Request, ctx: Ctx, key: Caller, endpointId: str) -> JsonResponse:
    """The endpoint's workers with their latest heartbeat of the last day; `live` as the
    stats count it (a heartbeat within the liveness timeout)."""
    scope, name = await resolve_endpoint(ctx.store, key, endpoint_id=_endpoint_id(endpointId),
                                         name=None)
    now = ctx.clock()
    now_ms = int(now * 1000)
    liveness_ms = ctx.settings.liveness_timeout_s * 1000
    rows = await store.workers(ctx.store, scope, now_ms - WORKERS_SINCE_S * 1000, now_ms)
    for w in rows:
        w["lastHeartbeat"] = w.pop("lastHeartbeatMs") / 1000
        w["live"] = w["lastHeartbeat"] * 1000 > now_ms - liveness_ms
    return JsonResponse({"tenant": scope.tenant, "id": scope.endpoint_id, "endpoint": name,
                         "now": now, "livenessSeconds": ctx.settings.liveness_timeout_s,
                         "workers": rows}, headers=_NO_STORE)


@router.get("/ui/api/endpoints/{endpointId}/cold-starts")
async def endpoint_cold_starts(request: Request, ctx: Ctx, key: Caller, st: Overview,
                               endpointId: str) -> JsonResponse:
    """Cold starts per point; query `timeframe` and `granularity` as the metrics route."""
    st.limiter.check(key.key_id)
    q = parse_query({k: v for k, v in request.query_params.items()
                     if k in ("timeframe", "granularity")} | {"metrics": "performance"},
                    ctx.settings.metrics_max_range)
    scope, name = await resolve_endpoint(ctx.store, key, endpoint_id=_endpoint_id(endpointId),
                                         name=None)
    return JsonResponse(await cold_starts(ctx, scope, name, q, st.series), headers=_NO_STORE)


@router.get("/ui/api/tasks")
async def tasks(request: Request, ctx: Ctx, key: Caller) -> JsonResponse:
    """Tasks with events (ClearML task ids), most recently active first."""
    return JsonResponse({"tasks": await store.tasks(ctx.store, _visible(key))},
                        headers=_NO_STORE)


@router.get("/ui/api/dead-letters")
async def dead_letters(request: Request, ctx: Ctx, key: Caller) -> JsonResponse:
    """Dead letters per topic with the latest reasons. Dead letters are not tenant-scoped
    (an undecodable message names no tenant), so this takes the superadmin role."""
    require_role(key, "superadmin")
    return JsonResponse({"topics": await store.dead_letters(ctx.store)}, headers=_NO_STORE)
