"""Who is calling: API key from `Authorization: Bearer`, a JSON body's `api_key` (Vast style)
or the `Coopr-ApiKey` header. Keys are looked up by id and cached briefly (revocation takes
effect within `cache_s`)."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import Request

from pipeline import keys
from pipeline.keys import ApiKey, Role
from pipeline.storage import AsyncStore
from query_api.errors import ApiError

__all__ = ["Authenticator", "require_role"]


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

    async def authenticate(self, request: Request, body_key: object = None) -> ApiKey:
        key: str | None = None
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            key = header[7:].strip()
        elif request.headers.get("coopr-apikey"):
            key = request.headers["coopr-apikey"].strip()
        elif isinstance(body_key, str) and body_key:
            key = body_key
        if not key:
            raise ApiError(401, "UNAUTHORIZED",
                           "missing API key: send 'Authorization: Bearer <key>' or 'api_key'")
        found = await self.lookup(key)
        if found is None:
            raise ApiError(401, "UNAUTHORIZED", "invalid or revoked API key")
        return found


def require_role(key: ApiKey, needed: Role) -> None:
    if not keys.role_allows(key.role, needed):
        raise ApiError(403, "INSUFFICIENT_PERMISSIONS",
                       f"this route requires the {needed} role",
                       {"requiredPermission": needed, "currentPermissions": [key.role]})
