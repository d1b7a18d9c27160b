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

from typing import Any

from fastapi import APIRouter, Request

from query_api.auth import authorize
from query_api.context import ApiContext
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
async def queues(request: Request) -> JsonResponse:
    ctx: ApiContext = request.app.state.ctx
    key = await ctx.auth.authenticate(request)
    own = authorize(key, "admin")
    everyone = key.role == "superadmin"
    where = "" if everyone else "WHERE tenant = {tenant:String}"
    rows = await ctx.store.rows(
        f"SELECT tenant, countIf(state = 'queued'), countIf(state = 'started') FROM ("
        f"SELECT tenant, task_id, argMax(state, (ts, src_partition, src_offset, src_index)) "
        f"AS state FROM {ctx.store.database}.job_tasks FINAL {where} GROUP BY tenant, task_id"
        f") GROUP BY tenant ORDER BY tenant", {"tenant": own})
    out: dict[str, dict[str, int]] = {own: {"inProgress": 0, "queued": 0, "total": 0}}
    for tenant, queued, started in rows:
        out[tenant] = {"inProgress": int(started), "queued": int(queued),
                       "total": int(started) + int(queued)}
    return JsonResponse(dict(sorted(out.items())))


def _scope(key_role: str, own: str, tenant: str | None, user: str | None
           ) -> tuple[str, str, dict[str, Any]]:
    """(tenant condition, user condition, parameters). The user condition applies to the `up`
    events that accrue time, never to the events that end them: a node's next event closes
    its interval whoever sent it."""
    params: dict[str, Any] = {}
    tenant_cond = "1"
    if key_role != "superadmin":
        tenant_cond = "tenant = {tenant:String}"
        params["tenant"] = own
    elif tenant is not None:
        tenant_cond = "tenant = {tenant:String}"
        params["tenant"] = tenant
    user_cond = "1"
    if user is not None:
        user_cond = "user = {user:String}"
        params["user"] = user
    return tenant_cond, user_cond, params


@router.get("/v2/metrics/nodes/usage", summary="Node-seconds in a time range (admin)",
            openapi_extra=declare(TENANT, USER, START, END, headers=coopr_headers()))
async def node_usage(request: Request) -> JsonResponse:
    ctx: ApiContext = request.app.state.ctx
    key = await ctx.auth.authenticate(request)
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
    tenant_cond, user_cond, params = _scope(key.role, own, tenant, user)
    where = f"{tenant_cond} AND {user_cond}"
    db = ctx.store.database
    if start is None:
        first = await ctx.store.rows(
            f"SELECT (SELECT min(toUnixTimestamp(ts)) FROM {db}.job_tasks FINAL WHERE {where} "
            f"AND state IN ('finished', 'failed')), (SELECT min(toUnixTimestamp(ts)) FROM "
            f"{db}.job_nodes FINAL WHERE {where}), (SELECT count() FROM {db}.job_tasks FINAL "
            f"WHERE {where} AND state IN ('finished', 'failed'))", params)
        done_at, node_at, done = first[0]
        start = int(done_at) if done else int(node_at) if node_at else end
        start = min(start, end)
    if end < start:
        raise bad_param("end", end, f"end must be >= start ({start})",
                        allowed_range=(start, MAX_UNIX_S))
    rows = await ctx.store.rows(
        f"SELECT sum(greatest(0, least(if(nxt < 0, {{end_ms:Int64}}, nxt), {{end_ms:Int64}}) "
        f"- greatest(t, {{start_ms:Int64}}))) FROM ("
        f"SELECT state, user, toUnixTimestamp64Milli(ts) AS t, "
        f"leadInFrame(toUnixTimestamp64Milli(ts), 1, toInt64(-1)) OVER (PARTITION BY tenant, "
        f"cluster, node_id ORDER BY ts, src_partition, src_offset, src_index ROWS BETWEEN "
        f"CURRENT ROW AND 1 FOLLOWING) AS nxt "
        f"FROM {db}.job_nodes FINAL WHERE {tenant_cond} "
        f"AND ts < fromUnixTimestamp64Milli({{end_ms:Int64}}, 'UTC')) "
        f"WHERE state = 'up' AND {user_cond}",
        {**params, "start_ms": start * 1000, "end_ms": end * 1000})
    ms = int(rows[0][0] or 0)
    value: int | float = ms // 1000 if ms % 1000 == 0 else ms / 1000
    return JsonResponse({"start": start, "end": end, "data": [{"time": start, "value": value}]})
