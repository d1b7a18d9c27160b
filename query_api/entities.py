"""Which rows a query reads (`Scope`: a tenant's endpoint or autogroup), shared by every route
family, and the resolution of endpoint and autogroup references to it, or 401/403/404."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.storage.clickhouse import AsyncStore
from pipeline.storage.keys import ApiKey
from query_api.entities_store import (
    autogroup_endpoints,
    endpoint_by_name,
    endpoint_name,
    endpoint_names,
)
from query_api.errors import ApiError
from query_api.read_cache import ReadCache

__all__ = ["Scope", "resolve_autogroup", "resolve_endpoint"]


@dataclass(frozen=True)
class Scope:
    """Which rows a query reads: one endpoint, or one autogroup of an endpoint (as SQL:
    `query_api.entities_store.scope_where`)."""

    tenant: str
    endpoint_id: int
    autogroup_id: int | None = None


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
                           name: str | None, reads: ReadCache | None = None
                           ) -> tuple[Scope, str]:
    """(scope, endpoint name) for an id, or for a name within the key's tenant."""
    if endpoint_id is not None:
        names = await endpoint_names(store, reads, endpoint_id)
        tenant = _pick(key, list(names), f"endpoint {endpoint_id}")
        return Scope(tenant, endpoint_id), names[tenant]
    found = await endpoint_by_name(store, reads, name or "", key.tenant,
                                   any_tenant=key.role == "superadmin")
    if found is None:
        raise ApiError(404, "NOT_FOUND", f"unknown endpoint {name!r}")
    return Scope(*found), name or ""


async def resolve_autogroup(store: AsyncStore, key: ApiKey, autogroup_id: int,
                            reads: ReadCache | None = None) -> tuple[Scope, str]:
    eps = await autogroup_endpoints(store, reads, autogroup_id)
    tenant = _pick(key, list(eps), f"autogroup {autogroup_id}")
    ep = eps[tenant]
    return Scope(tenant, ep, autogroup_id), await endpoint_name(store, reads, tenant, ep)
