"""FastAPI dependencies of the route handlers: the app's context and the calling key.

A handler declares what it needs (`ctx: Ctx`, `key: Caller`, `call: BodyCaller`) and never digs
in `app.state` or authenticates by hand; `create_app` puts the one `ApiContext` where `context`
finds it. This module and `query_api.auth` are the only places that authenticate
(`tests/unit/test_layout_rules.py`).

Where the key may come in the JSON body (`api_key`, or `mtoken` for a vast.ai worker's
reports), the dependency parses the body once and hands it on with the key: a body that is not
JSON answers 400 before a missing key answers 401.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from pipeline.storage.keys import ApiKey
from query_api.clearml import caller as clearml_caller
from query_api.clearml import envelope
from query_api.context import ApiContext
from query_api.errors import ApiError
from query_api.params import parse_json_body

__all__ = ["BodyCall", "BodyCaller", "Caller", "ClearmlCall", "Ctx", "ReportCaller",
           "body_caller", "caller", "clearml_call", "context", "report_caller"]


async def context(request: Request) -> ApiContext:
    """The `ApiContext` that `create_app` built for this app."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(context)]


async def caller(request: Request, ctx: Ctx) -> ApiKey:
    """The caller's key (Bearer, Coopr headers); 401 without a valid one."""
    return await ctx.auth.authenticate(request)


@dataclass(frozen=True, slots=True)
class BodyCall:
    """The caller's key and the request's JSON body (`{}` when the body is empty)."""

    key: ApiKey
    body: dict[str, Any]


async def body_caller(request: Request, ctx: Ctx) -> BodyCall:
    """The JSON body (400 when it is not a JSON object, 413 past 1 MiB), then the key from the
    headers or the body's `api_key` (401 without a valid one)."""
    body = parse_json_body(await request.body())
    return BodyCall(await ctx.auth.authenticate(request, body.get("api_key")), body)


async def report_caller(request: Request, ctx: Ctx) -> BodyCall:
    """As `body_caller` for a vast.ai worker's reports: the key may be the body's `mtoken`, and
    an `ingest` key passes."""
    body = parse_json_body(await request.body())
    return BodyCall(await ctx.auth.authenticate(request, body.get("mtoken"), reports=True),
                    body)


@dataclass(frozen=True, slots=True)
class ClearmlCall:
    """What a ClearML call brings before its action runs: the API version (None when absent or
    unreadable), the body with the query string merged in, and the key, or the error that
    stopped the call there (answered in ClearML's envelope by the route)."""

    version: tuple[int, int] | None
    body: dict[str, Any]
    key: ApiKey | None
    error: ApiError | None


def clearml_call(raw_body: bool) -> Callable[[Request, ApiContext], Awaitable[ClearmlCall]]:
    """The dependency of a ClearML action: version, then body (none read when `raw_body`: the
    action reads it itself), then the caller (`query_api.clearml.caller`), the first error
    winning."""

    async def incoming(request: Request, ctx: Ctx) -> ClearmlCall:
        version: tuple[int, int] | None = None
        body: dict[str, Any] = {}
        try:
            version = envelope.version_param(request.path_params.get("version")
                                             or request.headers.get("x-clearml-version"))
            if not raw_body:
                body = envelope.merge_query(parse_json_body(await request.body()),
                                            request.query_params.multi_items())
            key = await clearml_caller.session_key(ctx, request, body.get("api_key"))
            if key is None:
                key = await ctx.auth.authenticate(request, body.get("api_key"))
        except ApiError as exc:
            return ClearmlCall(version, body, None, exc)
        return ClearmlCall(version, body, key, None)

    return incoming


Caller = Annotated[ApiKey, Depends(caller)]
BodyCaller = Annotated[BodyCall, Depends(body_caller)]
ReportCaller = Annotated[BodyCall, Depends(report_caller)]
