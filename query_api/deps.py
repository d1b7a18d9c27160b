"""FastAPI dependencies of the route handlers: the app's context and the calling key.

A handler declares what it needs (`ctx: Ctx`, `key: Caller`) and never digs in `app.state` or
authenticates by hand; `create_app` puts the one `ApiContext` where `context` finds it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pipeline.storage.keys import ApiKey
from query_api.context import ApiContext

__all__ = ["Caller", "Ctx", "caller", "context"]


async def context(request: Request) -> ApiContext:
    """The `ApiContext` that `create_app` built for this app."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


async def caller(request: Request, ctx: Annotated[ApiContext, Depends(context)]) -> ApiKey:
    """The caller's key (Bearer, Coopr headers); 401 without a valid one."""
    return await ctx.auth.authenticate(request)


Ctx = Annotated[ApiContext, Depends(context)]
Caller = Annotated[ApiKey, Depends(caller)]
