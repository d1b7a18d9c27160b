"""Which rows a query reads (`Scope`: a tenant's endpoint or autogroup), shared by every route
family, and the resolution of endpoint and autogroup references to it, or 401/403/404."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.storage.clickhouse import AsyncStore
from pipeline.storage.keys import ApiKey
from query_api.errors import ApiError

__all__ = ["Scope", "resolve_autogroup", "resolve_endpoint"]


@dataclass(frozen=True)
class Scope:
    """Which rows a query reads: one endpoint, or one autogroup of an endpoint."""

    tenant: str
    endpoint_id: int
    autogroup_id: int | None = None

    def where(self) -> str:
        cond = "tenant = {tenant:String} AND endpoint_id = {ep:UInt64}"
        if self.autogroup_id is not None:
            cond += " AND autogroup_id = {ag:UInt64}"
        return cond

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"tenant": self.tenant, "ep": self.endpoint_id}
        if self.autogroup_id is not None:
            p["ag"] = self.autogroup_id
        return p


def _pick(key: ApiKey, tenants: list[str], what: str) -> str:
    if key.tenant in tenants:
        return key.tenant
    if not tenants:
        raise ApiError(404, "NOT_FOUND", f"unknown {what}")
    if key.role == "superadmin":
        return sorted(tenants)[0]
    raise ApiError(403, "INSUFFICIENT_PERMISSIONS", f"{what} belongs to another tenant",
                   {"requiredPermission": "tenant:" + "own", "currentPermissions": [key.role]})


async def resolve_endpoint(store: AsyncStore, key: ApiKey, *, endpoint_id: int | None,
                           name: str | None) -> tuple[Scope, str]:
    """(scope, endpoint name) for an id, or for a name within the key's tenant."""
    db = store.database
    if endpoint_id is not None:
        rows = await store.rows(
            f"SELECT tenant, argMax(endpoint_name, (endpoint_name != '', last_seen)) "
            f"FROM {db}.endpoints FINAL WHERE endpoint_id = {{ep:UInt64}} GROUP BY tenant",
            {"ep": endpoint_id})
        names = {t: n for t, n in rows}
        tenant = _pick(key, list(names), f"endpoint {endpoint_id}")
        return Scope(tenant, endpoint_id), names[tenant]
    tenant_filter = "" if key.role == "superadmin" else "AND tenant = {tenant:String}"
    rows = await store.rows(
        f"SELECT tenant, endpoint_id FROM {db}.endpoints FINAL WHERE endpoint_name = "
        f"{{name:String}} {tenant_filter} ORDER BY tenant = {{tenant:String}} DESC, "
        f"last_seen DESC LIMIT 1", {"name": name or "", "tenant": key.tenant})
    if not rows:
        raise ApiError(404, "NOT_FOUND", f"unknown endpoint {name!r}")
    return Scope(rows[0][0], int(rows[0][1])), name or ""


async def resolve_autogroup(store: AsyncStore, key: ApiKey, autogroup_id: int) -> tuple[Scope, str]:
    db = store.database
    rows = await store.rows(
        f"SELECT a.tenant, argMax(a.endpoint_id, a.last_seen) FROM {db}.autogroups AS a FINAL "
        f"WHERE a.autogroup_id = {{ag:UInt64}} GROUP BY a.tenant", {"ag": autogroup_id})
    eps = {t: int(e) for t, e in rows}
    tenant = _pick(key, list(eps), f"autogroup {autogroup_id}")
    ep = eps[tenant]
    names = await store.rows(
        f"SELECT argMax(endpoint_name, (endpoint_name != '', last_seen)) FROM {db}.endpoints "
        f"FINAL WHERE tenant = {{t:String}} AND endpoint_id = {{ep:UInt64}}",
        {"t": tenant, "ep": ep})
    return Scope(tenant, ep, autogroup_id), (names[0][0] if names else "")
