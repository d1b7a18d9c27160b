"""All SQL of the Coopr routes: the latest state of each task, and node-seconds from the
`up` → next-event intervals of `job_nodes`."""

from __future__ import annotations

from typing import Any

from pipeline.storage.clickhouse import AsyncStore

__all__ = ["first_instants", "node_milliseconds", "queue_counts", "where"]


async def queue_counts(store: AsyncStore, tenant: str | None) -> list[tuple[str, int, int]]:
    """(tenant, queued, in progress) per tenant, of `tenant` alone unless it is None. A task's
    latest state (by event time, then source position) decides."""
    cond = "" if tenant is None else "WHERE tenant = {tenant:String}"
    rows = await store.rows(
        f"SELECT tenant, countIf(state = 'queued'), countIf(state = 'started') FROM ("
        f"SELECT tenant, task_id, argMax(state, (ts, src_partition, src_offset, src_index)) "
        f"AS state FROM {store.database}.job_tasks FINAL {cond} GROUP BY tenant, task_id"
        f") GROUP BY tenant ORDER BY tenant", {"tenant": tenant or ""})
    return [(t, int(queued), int(started)) for t, queued, started in rows]


def where(role: str, own: str, tenant: str | None, user: str | None
          ) -> tuple[str, str, dict[str, Any]]:
    """(tenant condition, user condition, parameters). The user condition applies to the `up`
    events that accrue time, never to the events that end them: a node's next event closes
    its interval whoever sent it."""
    params: dict[str, Any] = {}
    tenant_cond = "1"
    if role != "superadmin":
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


async def first_instants(store: AsyncStore, cond: str, params: dict[str, Any]
                         ) -> tuple[Any, Any, int]:
    """(first task completion, first node event, completions) in the scope `cond`."""
    db = store.database
    first = await store.rows(
        f"SELECT (SELECT min(toUnixTimestamp(ts)) FROM {db}.job_tasks FINAL WHERE {cond} "
        f"AND state IN ('finished', 'failed')), (SELECT min(toUnixTimestamp(ts)) FROM "
        f"{db}.job_nodes FINAL WHERE {cond}), (SELECT count() FROM {db}.job_tasks FINAL "
        f"WHERE {cond} AND state IN ('finished', 'failed'))", params)
    done_at, node_at, done = first[0]
    return done_at, node_at, int(done)


async def node_milliseconds(store: AsyncStore, tenant_cond: str, user_cond: str,
                            params: dict[str, Any], start: int, end: int) -> int:
    """Node-milliseconds in [start, end] (unix seconds): each `up` event accrues time until
    the node's next event, or until `end`."""
    rows = await store.rows(
        f"SELECT sum(greatest(0, least(if(nxt < 0, {{end_ms:Int64}}, nxt), {{end_ms:Int64}}) "
        f"- greatest(t, {{start_ms:Int64}}))) FROM ("
        f"SELECT state, user, toUnixTimestamp64Milli(ts) AS t, "
        f"leadInFrame(toUnixTimestamp64Milli(ts), 1, toInt64(-1)) OVER (PARTITION BY tenant, "
        f"cluster, node_id ORDER BY ts, src_partition, src_offset, src_index ROWS BETWEEN "
        f"CURRENT ROW AND 1 FOLLOWING) AS nxt "
        f"FROM {store.database}.job_nodes FINAL WHERE {tenant_cond} "
        f"AND ts < fromUnixTimestamp64Milli({{end_ms:Int64}}, 'UTC')) "
        f"WHERE state = 'up' AND {user_cond}",
        {**params, "start_ms": start * 1000, "end_ms": end * 1000})
    return int(rows[0][0] or 0)
