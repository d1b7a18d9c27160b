"""Who is calling, and what their role lets them do.

The key comes from `Authorization: Bearer`, a JSON body's `api_key` (Vast style) or the
`Coopr-ApiKey` header. Keys are looked up by id and cached briefly (revocation takes effect
within `cache_s`). A Coopr-style call must send all three of `Coopr-UserID`, `Coopr-ApiKey`
and `Coopr-TenantID` (else 401), and `Coopr-TenantID` must be the key's tenant (else 403) — or
`superadmin`, the reference's name for the superadmin tenant, with a key of the superadmin role
(whatever tenant it was created in, e.g. the bootstrap key of `vitals up`).

Roles, the same rule for every route family (`authorize`):

| role | reads | tenant |
| --- | --- | --- |
| reader | stats, timeseries, custom metrics, events | its own |
| admin | + queues, node usage, key management, ingest | its own |
| superadmin | + read-only SQL over all tables, tenant-level node usage | any (`tenant=`) |
| ingest | only reports events (a vast.ai worker's MASTER_TOKEN): reads nothing | its own |

Asking for another tenant's data without the superadmin role is a 403; so is a route that needs
a higher role. Health, readiness and /metrics are public.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import Request

from pipeline.storage import keys
from pipeline.storage.clickhouse import AsyncStore
from pipeline.storage.keys import ApiKey, Role
from query_api.errors import ApiError

__all__ = ["COOPR_SUPERADMIN", "Authenticator", "authorize", "require_role"]

#: The `Coopr-TenantID` of the reference's superadmin examples; any superadmin key may send it.
COOPR_SUPERADMIN = "superadmin"


class Authenticator:
    def __init__(self, store: AsyncStore, *, cache_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._cache_s = cache_s
        self._clock = clock

    async def lookup(self, key: str) -> ApiKey | None:
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self._cache_s:
            return hit[1]
        found = await self._store.call(lambda s: keys.find_key(s, key))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now, found)
        return found

    def forget(self) -> None:
        self._cache.clear()

    async def authenticate(self, request: Request, body_key: object = None, *,
                           reports: bool = False) -> ApiKey:
        """The caller's key; 401 without a valid one. A key of the `ingest` role passes only
        where the route reports events (`reports=True`): it reads nothing (403)."""
        key: str | None = None
        coopr_tenant: str | None = None
        headers = request.headers
        header = headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            key = header[7:].strip()
        elif "coopr-apikey" in headers:
            missing = [h for h in ("Coopr-UserID", "Coopr-ApiKey", "Coopr-TenantID")
                       if not headers.get(h, "").strip()]
            if missing:
                raise ApiError(401, "UNAUTHORIZED",
                               f"missing header(s) {', '.join(missing)}: Coopr-style calls "
                               f"send Coopr-UserID, Coopr-ApiKey and Coopr-TenantID",
                               {"missingHeaders": missing})
            key = headers["coopr-apikey"].strip()
            coopr_tenant = headers["coopr-tenantid"].strip()
        elif isinstance(body_key, str) and body_key:
            key = body_key
        if not key:
            bare = header.strip()
            if bare and " " not in bare:  # `Authorization: vk_…`: the scheme is missing
                raise ApiError(401, "UNAUTHORIZED", "the Authorization header needs the Bearer "
                               "scheme: send 'Authorization: Bearer <key>'",
                               {"parameter": "Authorization"})
            raise ApiError(401, "UNAUTHORIZED",
                           "missing API key: send 'Authorization: Bearer <key>' or 'api_key'")
        found = await self.lookup(key)
        if found is None:
            raise ApiError(401, "UNAUTHORIZED", "invalid or revoked API key")
        if coopr_tenant is not None and coopr_tenant != found.tenant and not (
                coopr_tenant == COOPR_SUPERADMIN and found.role == "superadmin"):
            raise ApiError(403, "INSUFFICIENT_PERMISSIONS",
                           f"Coopr-TenantID {coopr_tenant!r} is not the tenant of this API key",
                           {"parameter": "Coopr-TenantID"})
        if found.role == "ingest" and not reports:
            raise ApiError(403, "INSUFFICIENT_PERMISSIONS", "an ingest key only reports "
                           "events; reading needs a reader key or above",
                           {"requiredPermission": "reader", "currentPermissions": ["ingest"]})
        return found


def require_role(key: ApiKey, needed: Role) -> None:
    if not keys.role_allows(key.role, needed):
        raise ApiError(403, "INSUFFICIENT_PERMISSIONS",
                       f"this route requires the {needed} role",
                       {"requiredPermission": needed, "currentPermissions": [key.role]})


def authorize(key: ApiKey, needed: Role, tenant: str | None = None) -> str:
    """The tenant a call reads: `tenant` if given (another one needs superadmin), else the
    key's own. Raises 403 if the key's role is below `needed` or the tenant is not its own."""
    require_role(key, needed)
    target = tenant or key.tenant
    if target != key.tenant and key.role != "superadmin":
        raise ApiError(403, "INSUFFICIENT_PERMISSIONS",
                       f"tenant {target!r} is not the tenant of this API key",
                       {"parameter": "tenant", "requiredPermission": "superadmin",
                        "currentPermissions": [key.role]})
    return target
