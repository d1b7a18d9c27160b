"""Coopr-style job metrics: `GET /v2/metrics/queues` and `GET /v2/metrics/nodes/usage`.

Both need the admin role (reference: "only admins are allowed"); a tenant admin sees its own
tenant, a superadmin key (the reference's superadmin tenant) sees every tenant. Keys come as
`Coopr-UserID` + `Coopr-ApiKey` + `Coopr-TenantID` headers or `Authorization: Bearer`.

- Queues: each task's latest state (by event time, then source position) decides: `queued`
  counts as queued, `started` as in progress; `finished` and `failed` leave the queue.
- Node usage: node-seconds in [start, end]. A node (tenant, cluster, node_id) accrues time from
  each `up` event to its next event (whoever sent it: with `user`, only that user's `up` events
  accrue time, and any later event of the node ends it), or to `end` if there is none. `end`
  defaults to now; `start` to the first task completion (finished or failed) in the caller's
  scope, else the first node event, else `end`. `user` narrows to one user (within the
  caller's tenant for a tenant admin; across tenants for a superadmin); `tenant` is for
  superadmins only: anyone else gets 405, as in the reference. A superadmin key may send
  `Coopr-TenantID: superadmin`, as the reference's examples do (`query_api.auth`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from query_api.auth import authorize
from query_api.coopr import store
from query_api.deps import Caller, Ctx
from query_api.errors import ApiError, bad_param
from query_api.query_params import MAX_UNIX_S, QueryParam, coopr_headers, declare
from query_api.responses import JsonResponse

__all__ = ["router"]

router = APIRouter(tags=["queues and node usage"])

TENANT = QueryParam("tenant", "string", "one tenant's node usage (superadmin only; anyone else "
                    "gets 405)", max_length=64)
USER = QueryParam("user", "string", "one user's node usage", max_length=128)
START = QueryParam("start", "integer", "range start, unix seconds (default: the first task "
                   "completion)", minimum=0, maximum=MAX_UNIX_S)
END = QueryParam("end", "integer", "range end, unix seconds (default: now)", minimum=0,
                 maximum=MAX_UNIX_S)


@router.get("/v2/metrics/queues", summary="Tasks queued and in progress per tenant (admin)",
            openapi_extra=declare(headers=coopr_headers()))
async def queues(ctx: Ctx, key: Caller) -> JsonResponse:
    own = authorize(key, "admin")
    rows = await store.queue_counts(ctx.store, None if key.role == "superadmin" else own)
    out: dict[str, dict[str, int]] = {own: {"inProgress": 0, "queued": 0, "total": 0}}
    for tenant, queued, started in rows:
        out[tenant] = {"inProgress": started, "queued": queued, "total": started + queued}
    return JsonResponse(dict(sorted(out.items())))


@router.get("/v2/metrics/nodes/usage", summary="Node-seconds in a time range (admin)",
            openapi_extra=declare(TENANT, USER, START, END, headers=coopr_headers()))
async def node_usage(request: Request, ctx: Ctx, key: Caller) -> JsonResponse:
    own = authorize(key, "admin")
    q = request.query_params
    tenant = TENANT.read_str(q)
    if tenant is not None and key.role != "superadmin":
        raise ApiError(405, "METHOD_NOT_ALLOWED", "tenant-level node usage is available to "
                       "the superadmin tenant only", {"parameter": "tenant"},
                       headers={"Allow": "GET"})
    user = USER.read_str(q)
    start = START.read_int(q)
    end = END.read_int(q)
    if end is None:
        end = min(int(ctx.clock()), MAX_UNIX_S)
    tenant_cond, user_cond, params = store.where(key.role, own, tenant, user)
    if start is None:
        done_at, node_at, done = await store.first_instants(
            ctx.store, f"{tenant_cond} AND {user_cond}", params)
        start = int(done_at) if done else int(node_at) if node_at else end
        start = min(start, end)
    if end < start:
        raise bad_param("end", end, f"end must be >= start ({start})",
                        allowed_range=(start, MAX_UNIX_S))
    ms = await store.node_milliseconds(ctx.store, tenant_cond, user_cond, params, start, end)
    value: int | float = ms // 1000 if ms % 1000 == 0 else ms / 1000
    return JsonResponse({"start": start, "end": end, "data": [{"time": start, "value": value}]})
