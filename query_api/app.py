"""`create_app(ctx)`: the query API. No app is built at import time."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from starlette.responses import Response

from query_api import ui
from query_api.clearml import event_routes as routes_events
from query_api.clearml import events as clearml_events
from query_api.clearml import routes as clearml_routes
from query_api.clearml import tokens
from query_api.clearml.middleware import ClearmlEnvelope
from query_api.clearml.scroll import ScrollCodec, load_secret
from query_api.context import ApiContext
from query_api.coopr import routes as routes_coopr
from query_api.custom_metrics import routes as routes_custom_metrics
from query_api.endpoint_metrics import routes as routes_metrics
from query_api.errors import install_handlers
from query_api.limits import BodyLimit
from query_api.openapi_docs import document_errors
from query_api.ops import routes as routes_admin
from query_api.ui import routes as ui_routes
from query_api.vast import routes as routes_stats
from query_api.vast_worker import routes as vast_worker_routes

__all__ = ["create_app"]


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="Vitals query API",
        version="0.1.0",
        description="Stats, timeseries and event reads over the Vitals ClickHouse tables. "
        "Errors are JSON: {error, message, details}.",
        docs_url=None,  # /docs and /redoc: query_api.ui, on vendored assets (no CDN)
        redoc_url=None,
    )
    if ctx.scroll is None or ctx.clearml_token_secret is None:
        secret = load_secret(ctx.settings.secret, ctx.settings.data_dir)  # read once per app
        ctx.scroll = ctx.scroll or ScrollCodec(secret)
        ctx.clearml_token_secret = ctx.clearml_token_secret or tokens.derive_secret(secret)
    app.state.ctx = ctx
    # per-family state, built here once (the families' dependencies hand it to handlers)
    app.state.endpoint_metrics = routes_metrics.State(ctx)
    app.state.ui_overview = ui_routes.OverviewState(ctx)
    install_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=ctx.settings.max_body_bytes)

    @app.middleware("http")
    # call_next's type is Starlette's internal RequestResponseEndpoint
    async def _timing(request: Request, call_next):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        ctx.telemetry.observe("vitals_api_request_seconds", time.perf_counter() - started,
                              route=path)
        return response

    app.add_middleware(ClearmlEnvelope)  # outermost of ours: wraps BodyLimit's 413 too
    app.include_router(routes_stats.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_custom_metrics.router)
    app.include_router(routes_coopr.router)
    app.include_router(routes_events.router)
    app.include_router(clearml_events.router)
    app.include_router(clearml_routes.router)
    app.include_router(routes_metrics.router)
    app.include_router(vast_worker_routes.router)
    app.include_router(ui.router)
    document_errors(app)
    return app
