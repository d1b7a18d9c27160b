"""The SQL of entities (`query_api.entities`): a scope's condition, and the reads that resolve
endpoint and autogroup references (through `reads` when given, keyed by SQL and parameters)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.storage.clickhouse import AsyncStore
from query_api.read_cache import ReadCache

if TYPE_CHECKING:
    from query_api.entities import Scope

__all__ = ["autogroup_endpoints", "endpoint_by_name", "endpoint_name", "endpoint_names",
           "scope_params", "scope_where"]


def scope_where(scope: Scope) -> str:
    """The condition on a table's tenant, endpoint_id (and autogroup_id) columns that selects
    the scope's rows; its parameters are `scope_params`."""
    cond = "tenant = {tenant:String} AND endpoint_id = {ep:UInt64}"
    if scope.autogroup_id is not None:
        cond += " AND autogroup_id = {ag:UInt64}"
    return cond


def scope_params(scope: Scope) -> dict[str, Any]:
    p: dict[str, Any] = {"tenant": scope.tenant, "ep": scope.endpoint_id}
    if scope.autogroup_id is not None:
        p["ag"] = scope.autogroup_id
    return p


async def _rows(store: AsyncStore, reads: ReadCache | None, sql: str,
                params: dict[str, Any]) -> list[tuple[Any, ...]]:
    if reads is None:
        return await store.rows(sql, params)
    return await reads.get("entities", (sql, tuple(sorted(params.items()))),
                           lambda: store.rows(sql, params))


async def endpoint_names(store: AsyncStore, reads: ReadCache | None,
                         endpoint_id: int) -> dict[str, str]:
    """tenant → the endpoint's name, for every tenant with endpoint `endpoint_id`."""
    rows = await _rows(
        store, reads,
        f"SELECT tenant, argMax(endpoint_name, (endpoint_name != '', last_seen)) "
        f"FROM {store.database}.endpoints FINAL WHERE endpoint_id = {{ep:UInt64}} "
        f"GROUP BY tenant", {"ep": endpoint_id})
    return {t: n for t, n in rows}


async def endpoint_by_name(store: AsyncStore, reads: ReadCache | None, name: str, tenant: str,
                           any_tenant: bool) -> tuple[str, int] | None:
    """(tenant, endpoint id) of the endpoint called `name`: in `tenant`, or (`any_tenant`) in
    `tenant` first, then the most recently seen; None when there is none."""
    tenant_filter = "" if any_tenant else "AND tenant = {tenant:String}"
    rows = await _rows(
        store, reads,
        f"SELECT tenant, endpoint_id FROM {store.database}.endpoints FINAL WHERE endpoint_name = "
        f"{{name:String}} {tenant_filter} ORDER BY tenant = {{tenant:String}} DESC, "
        f"last_seen DESC LIMIT 1", {"name": name, "tenant": tenant})
    return (rows[0][0], int(rows[0][1])) if rows else None


async def autogroup_endpoints(store: AsyncStore, reads: ReadCache | None,
                              autogroup_id: int) -> dict[str, int]:
    """tenant → the endpoint of autogroup `autogroup_id` (the latest seen), per tenant."""
    rows = await _rows(
        store, reads,
        f"SELECT a.tenant, argMax(a.endpoint_id, a.last_seen) FROM {store.database}.autogroups "
        f"AS a FINAL WHERE a.autogroup_id = {{ag:UInt64}} GROUP BY a.tenant",
        {"ag": autogroup_id})
    return {t: int(e) for t, e in rows}


async def endpoint_name(store: AsyncStore, reads: ReadCache | None, tenant: str,
                        endpoint_id: int) -> str:
    """The name of a tenant's endpoint ('' when it has none)."""
    names = await _rows(
        store, reads,
        f"SELECT argMax(endpoint_name, (endpoint_name != '', last_seen)) FROM "
        f"{store.database}.endpoints FINAL WHERE tenant = {{t:String}} AND "
        f"endpoint_id = {{ep:UInt64}}", {"t": tenant, "ep": endpoint_id})
    return names[0][0] if names else ""
