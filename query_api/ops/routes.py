"""Operations routes: health, readiness, Prometheus metrics, read-only SQL, key management."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from pipeline.core.health import Check
from pipeline.storage import keys
from pipeline.storage.sql_format import trailing_format
from query_api.auth import authorize, require_role
from query_api.context import ApiContext
from query_api.deps import BodyCaller, Caller, Ctx
from query_api.errors import ApiError, bad_param
from query_api.ops import gauges as pipeline_metrics
from query_api.params import get_choice, get_str
from query_api.probes import ALIVE, readyz_answer
from query_api.query_params import QueryParam, declare
from query_api.responses import JsonResponse

__all__ = ["SQL_FORMATS", "router"]

router = APIRouter()

SQL_FORMATS = ("TSV", "TSVWithNames", "CSV", "CSVWithNames", "JSONEachRow", "JSON", "Pretty",
               "PrettyCompact", "Markdown", "Vertical")


@router.get("/healthz", tags=["ops"], summary="Process is alive")
async def healthz() -> JsonResponse:
    return JsonResponse(ALIVE)


@router.get("/readyz", tags=["ops"],
            summary="Storage answers, the broker is reachable and no agent is joining or stalled")
async def readyz(request: Request, ctx: Ctx) -> JsonResponse:
    """200 when every check is ready, else 503 with `Retry-After`; the body lists each check
    (`storage`, `broker`, `agent:<topic>`: state, reason, since, lag). Answered from the
    process's `Health`, which its readiness monitor refreshes every second; a process without a
    monitor probes storage here."""
    checks = ctx.health.snapshot()
    if not any(c.name == "storage" for c in checks):
        checks = sorted([*checks, await _probe_storage(ctx)], key=lambda c: c.name)
    status, body, headers = readyz_answer(checks, ctx.lag())
    return JsonResponse(body, status_code=status, headers=headers)


async def _probe_storage(ctx: ApiContext) -> Check:
    try:
        async with asyncio.timeout(2.0):
            await ctx.store.probe()
    except Exception as exc:  # any failure: not ready, with the reason
        return Check("storage", "down", f"ClickHouse does not answer ({type(exc).__name__})",
                     ctx.clock())
    return Check("storage", "ok", None, ctx.clock())


@router.get("/metrics", tags=["ops"], summary="Prometheus metrics of the pipeline itself",
            response_class=PlainTextResponse)
async def metrics(request: Request, ctx: Ctx) -> Response:
    await pipeline_metrics.refresh(ctx)
    return PlainTextResponse(ctx.telemetry.render(),
                             media_type="text/plain; version=0.0.4; charset=utf-8")


@router.post("/sql", tags=["ops"],
             summary="Run read-only SQL (superadmin key); ClickHouse formats",
             responses={200: {"content": {"text/plain": {}, "application/json": {}}}})
async def sql(ctx: Ctx, call: BodyCaller) -> Response:
    """Body `{"query": "...", "format": "TSV"}`; runs with `readonly=1`. This is how analysts
    reach the embedded engine, which only the running process may open. SQL sees every
    tenant's rows, so it takes the superadmin role."""
    body = call.body
    require_role(call.key, "superadmin")
    query = get_str(body, "query", required=True, max_len=100_000)
    fmt = get_choice(body, "format", SQL_FORMATS, default="TSVWithNames")
    assert query is not None and fmt is not None
    query, named = trailing_format(query)
    if named is not None:
        fmt = _named_format(named, body.get("format"))
    try:
        data = await ctx.store.readonly_raw(query, fmt)
    except ApiError:
        raise
    except Exception as exc:
        from pipeline.core.errors import StorageUnavailable

        if isinstance(exc, StorageUnavailable):
            raise
        raise ApiError(400, "SQL_ERROR", str(exc)[:2000], {"parameter": "query"}) from None
    media = "application/json" if fmt.startswith("JSON") else "text/plain; charset=utf-8"
    return Response(data, media_type=media)


def _named_format(named: str, given: object) -> str:
    """The format a query's own FORMAT clause names, as one of SQL_FORMATS (any case)."""
    canonical = {f.lower(): f for f in SQL_FORMATS}.get(named.lower())
    if canonical is None:
        raise bad_param("query", named, f"the query's FORMAT {named} is not one this route "
                        f"writes; use one of {', '.join(SQL_FORMATS)}", SQL_FORMATS)
    if given is not None and given != canonical:
        raise bad_param("format", given, f"the query ends with FORMAT {named} and the body "
                        f"asks for format {given}: give one of them", [canonical])
    return canonical


@router.post("/admin/keys", tags=["admin"], summary="Create an API key (admin)",
             status_code=201)
async def create_key(ctx: Ctx, call: BodyCaller) -> JsonResponse:
    body, caller = call.body, call.key
    require_role(caller, "admin")
    tenant = get_str(body, "tenant", default=caller.tenant, max_len=64)
    role = get_choice(body, "role", keys.ROLES, default="reader")
    name = get_str(body, "name", default="", max_len=128)
    assert tenant is not None and role is not None and name is not None
    if tenant != caller.tenant and caller.role != "superadmin":
        raise ApiError(403, "INSUFFICIENT_PERMISSIONS", "only a superadmin creates keys for "
                       "another tenant", {"requiredPermission": "superadmin",
                                          "currentPermissions": [caller.role]})
    # `role` is one of ROLES (checked by get_choice above), a str to mypy
    if not keys.role_allows(caller.role, role):  # type: ignore[arg-type]
        raise ApiError(403, "INSUFFICIENT_PERMISSIONS", f"an {caller.role} cannot create a "
                       f"{role} key", {"requiredPermission": role,
                                       "currentPermissions": [caller.role]})
    try:
        new = await ctx.store.call(lambda s: keys.create_key(s, tenant, role, name, ctx.clock))
    except keys.KeyError_ as exc:
        raise bad_param("tenant", tenant, str(exc)) from None
    return JsonResponse({"key": new.key, **_key_json(new.info)}, status_code=201)


_KEYS_TENANT = QueryParam("tenant", "string", "one tenant's keys (another tenant's needs "
                         "superadmin); default: the key's own, or every tenant for a superadmin",
                         max_length=64)


@router.get("/admin/keys", tags=["admin"], summary="List API keys of your tenant (admin); "
            "a superadmin sees all, or one with ?tenant=", openapi_extra=declare(_KEYS_TENANT))
async def list_keys(request: Request, ctx: Ctx, caller: Caller) -> JsonResponse:
    asked = _KEYS_TENANT.read_str(request.query_params)
    tenant: str | None = authorize(caller, "admin", asked)
    if caller.role == "superadmin" and asked is None:
        tenant = None  # every tenant
    found = await ctx.store.call(lambda s: keys.list_keys(s, tenant))
    return JsonResponse({"keys": [_key_json(k) for k in found]})


@router.delete("/admin/keys/{key_id}", tags=["admin"], summary="Revoke an API key (admin)")
async def revoke_key(ctx: Ctx, caller: Caller, key_id: str) -> JsonResponse:
    require_role(caller, "admin")
    tenant = None if caller.role == "superadmin" else caller.tenant
    visible = await ctx.store.call(lambda s: keys.list_keys(s, tenant))
    target = next((k for k in visible if k.key_id == key_id), None)
    if target is None:
        raise ApiError(404, "NOT_FOUND", f"no API key with id {key_id!r}")
    if not keys.role_allows(caller.role, target.role):
        raise ApiError(403, "INSUFFICIENT_PERMISSIONS", f"an {caller.role} cannot revoke a "
                       f"{target.role} key", {"requiredPermission": target.role,
                                              "currentPermissions": [caller.role]})
    try:
        info = await ctx.store.call(lambda s: keys.revoke_key(s, key_id, tenant, ctx.clock))
    except keys.KeyError_:
        raise ApiError(404, "NOT_FOUND", f"no API key with id {key_id!r}") from None
    ctx.auth.forget()
    return JsonResponse(_key_json(info))


def _key_json(k: keys.ApiKey) -> dict[str, Any]:
    return {"key_id": k.key_id, "tenant": k.tenant, "role": k.role, "name": k.name,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(k.created_at)),
            "revoked": k.revoked}
