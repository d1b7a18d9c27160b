"""All SQL of the dashboard's own reads. Every read of tenant data is filtered by the tenants
the caller may see: its own, or every tenant for a superadmin (`tenant=None`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.storage.clickhouse import AsyncStore
from query_api.entities import Scope
from query_api.entities_store import scope_params, scope_where

__all__ = ["MAX_ENDPOINTS", "EndpointRow", "dead_letters", "endpoints", "tasks", "workers"]

MAX_ENDPOINTS = 200
MAX_TASKS = 500
MAX_WORKERS = 500
LATEST_REASONS = 5


@dataclass(frozen=True)
class EndpointRow:
    tenant: str
    endpoint_id: int
    name: str
    last_seen_ms: int


def _tenant_filter(tenant: str | None) -> tuple[str, dict[str, Any]]:
    if tenant is None:
        return "1", {}
    return "tenant = {tenant:String}", {"tenant": tenant}


async def _listing(store: AsyncStore, tenant: str | None, columns: str, table: str,
                   grouped: str, limit: int) -> list[Any]:
    """`SELECT columns FROM table FINAL` of one tenant (every tenant's for None), then
    `grouped` (GROUP BY … ORDER BY …), at most `limit` rows."""
    where, params = _tenant_filter(tenant)
    return await store.rows(f"SELECT {columns} FROM {store.database}.{table} FINAL "
                            f"WHERE {where} {grouped} LIMIT {limit}", params)


async def endpoints(store: AsyncStore, tenant: str | None) -> list[EndpointRow]:
    """Endpoints by name, at most `MAX_ENDPOINTS`; `tenant=None` lists every tenant's."""
    rows = await _listing(
        store, tenant, "tenant, endpoint_id, argMax(endpoint_name, (endpoint_name != '', "
        "last_seen)), toUnixTimestamp64Milli(max(last_seen))", "endpoints",
        "GROUP BY tenant, endpoint_id ORDER BY tenant, endpoint_id", MAX_ENDPOINTS)
    return [EndpointRow(str(t), int(e), str(n), int(ls)) for t, e, n, ls in rows]


async def workers(store: AsyncStore, scope: Scope, since_ms: int, until_ms: int
                  ) -> list[dict[str, Any]]:
    """Each worker's latest heartbeat in (since_ms, until_ms], newest first."""
    rows = await store.rows(
        f"SELECT worker_id, argMax(autogroup_id, ts), toUnixTimestamp64Milli(max(ts)), "
        f"argMax(cur_load, ts), argMax(max_perf, ts), argMax(cur_perf, ts), "
        f"argMax(cur_capacity, ts), argMax(max_capacity, ts), argMax(num_requests_working, ts), "
        f"argMax(num_requests_recieved, ts), argMax(gpu_util, ts), argMax(error_msg, ts) "
        f"FROM {store.database}.heartbeats_raw WHERE {scope_where(scope)} "
        f"AND ts > fromUnixTimestamp64Milli({{lo:Int64}}, 'UTC') "
        f"AND ts <= fromUnixTimestamp64Milli({{hi:Int64}}, 'UTC') "
        f"GROUP BY worker_id ORDER BY max(ts) DESC, worker_id LIMIT {MAX_WORKERS}",
        {**scope_params(scope), "lo": since_ms, "hi": until_ms})
    keys = ("workerId", "autogroupId", "lastHeartbeatMs", "curLoad", "maxPerf", "curPerf",
            "curCapacity", "maxCapacity", "requestsWorking", "requestsReceived", "gpuUtil",
            "errorMsg")
    out = []
    for row in rows:
        w = dict(zip(keys, row, strict=True))
        for k in ("workerId", "autogroupId", "lastHeartbeatMs", "requestsWorking",
                  "requestsReceived"):
            w[k] = int(w[k])
        for k in ("curLoad", "maxPerf", "curPerf", "curCapacity", "maxCapacity", "gpuUtil"):
            w[k] = float(w[k])
        out.append(w)
    return out


async def tasks(store: AsyncStore, tenant: str | None) -> list[dict[str, Any]]:
    """Tasks with events, most recently active first: what they hold (`metrics`, `logs`,
    `blobs`) and when they last reported."""
    rows = await _listing(
        store, tenant, "task, tenant, arraySort(groupUniqArray(kind)), "
        "toUnixTimestamp64Milli(max(last_seen))", "task_owners",
        "GROUP BY task, tenant ORDER BY max(last_seen) DESC, task", MAX_TASKS)
    return [{"task": str(t), "tenant": str(te), "kinds": [str(k) for k in kinds],
             "lastSeen": int(ls) / 1000} for t, te, kinds, ls in rows]


async def dead_letters(store: AsyncStore) -> list[dict[str, Any]]:
    """Per topic: dead-letter count and the latest reasons (every tenant's: superadmin)."""
    db = store.database
    rows = await store.rows(
        f"SELECT topic, count(), toUnixTimestamp64Milli(max(received_at)) "
        f"FROM {db}.dead_letters FINAL GROUP BY topic ORDER BY topic")
    latest = await store.rows(
        f"SELECT topic, reason, toUnixTimestamp64Milli(received_at), src_partition, src_offset "
        f"FROM {db}.dead_letters FINAL ORDER BY topic, received_at DESC "
        f"LIMIT {LATEST_REASONS} BY topic")
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for topic, reason, at, part, off in latest:
        by_topic.setdefault(str(topic), []).append(
            {"reason": str(reason), "receivedAt": int(at) / 1000, "partition": int(part),
             "offset": int(off)})
    return [{"topic": str(t), "count": int(n), "latestAt": int(at) / 1000,
             "latest": by_topic.get(str(t), [])} for t, n, at in rows]
