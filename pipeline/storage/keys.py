"""Tenant-scoped API keys: format, hashing, and their table. Only hashes are stored.

A key reads `vk_<key_id>_<secret>`: `key_id` (12 hex chars) locates the row, the SHA-256 of
the whole key is compared in constant time. Secrets are 256-bit random, so a fast hash is
sound (no dictionary to attack). Revocation writes a newer version of the row.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pipeline.core.clock import row_version
from pipeline.core.errors import VitalsError
from pipeline.storage.clickhouse import Store

__all__ = [
    "ROLES",
    "ApiKey",
    "KeyError_",
    "NewKey",
    "Role",
    "create_key",
    "find_key",
    "hash_key",
    "list_keys",
    "parse_key",
    "revoke_key",
    "role_allows",
]

Role = Literal["reader", "admin", "superadmin", "ingest"]
ROLES: tuple[Role, ...] = ("reader", "admin", "superadmin", "ingest")
#: reader < admin < superadmin; `ingest` stands apart: it may only report (e.g. a vast.ai
#: worker's MASTER_TOKEN), and admin and superadmin may report too.
_RANK = {"reader": 0, "admin": 1, "superadmin": 2}


class KeyError_(VitalsError, ValueError):
    """Bad key-management input (unknown role, bad tenant name, unknown key id)."""


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant: str
    role: Role
    name: str
    created_at: float
    revoked: bool


@dataclass(frozen=True)
class NewKey:
    key: str
    info: ApiKey


def role_allows(role: Role, needed: Role) -> bool:
    """Whether a key of `role` may do what needs `needed`. Reading needs reader or above;
    reporting (`ingest`) needs ingest, admin or superadmin; an ingest key reads nothing."""
    if needed == "ingest":
        return role in ("ingest", "admin", "superadmin")
    if role == "ingest":
        return False
    return _RANK[role] >= _RANK[needed]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_key(key: str) -> str | None:
    """The key id of a well-formed key, else None."""
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != "vk" or len(parts[1]) != 12 or len(parts[2]) < 20:
        return None
    return parts[1]


def _check_tenant(tenant: str) -> None:
    if not tenant or len(tenant) > 64 or not all(c.isalnum() or c in "-_." for c in tenant):
        raise KeyError_(f"tenant {tenant!r}: use 1-64 letters, digits, '-', '_' or '.'")


def create_key(store: Store, tenant: str, role: str, name: str = "",
               clock: Callable[[], float] = time.time) -> NewKey:
    _check_tenant(tenant)
    if role not in ROLES:
        raise KeyError_(f"role {role!r}: allowed values are {', '.join(ROLES)}")
    key_id = secrets.token_hex(6)
    key = f"vk_{key_id}_{secrets.token_urlsafe(32).replace('_', '-')}"
    now = clock()
    store.insert("api_keys", [[key_id], [tenant], [role], [hash_key(key)], [name],
                              [int(now * 1000)], [False], [row_version(now)]],
                 ("key_id", "tenant", "role", "key_hash", "name", "created_at", "revoked",
                  "version"))
    return NewKey(key, ApiKey(key_id, tenant, role, name, now, False))


def _rows(store: Store, where: str, params: dict[str, str]) -> list[tuple[ApiKey, str]]:
    rows = store.rows(
        f"SELECT key_id, tenant, role, name, toUnixTimestamp64Milli(created_at), revoked, "
        f"key_hash FROM {store.database}.api_keys FINAL WHERE {where} ORDER BY created_at",
        params)
    return [(ApiKey(r[0], r[1], r[2], r[3], r[4] / 1000, bool(r[5])), r[6]) for r in rows]


def list_keys(store: Store, tenant: str | None = None) -> list[ApiKey]:
    if tenant is None:
        return [k for k, _ in _rows(store, "1", {})]
    return [k for k, _ in _rows(store, "tenant = {t:String}", {"t": tenant})]


def find_key(store: Store, key: str) -> ApiKey | None:
    """The live key matching `key` exactly, else None (compares hashes in constant time)."""
    key_id = parse_key(key)
    if key_id is None:
        return None
    found = _rows(store, "key_id = {k:String}", {"k": key_id})
    if not found:
        return None
    info, stored_hash = found[-1]
    if not hmac.compare_digest(stored_hash, hash_key(key)) or info.revoked:
        return None
    return info


def revoke_key(store: Store, key_id: str, tenant: str | None = None,
               clock: Callable[[], float] = time.time) -> ApiKey:
    """Revoke by id; with `tenant`, only a key of that tenant. Raises KeyError_ if not found."""
    found = _rows(store, "key_id = {k:String}", {"k": key_id})
    if not found or (tenant is not None and found[-1][0].tenant != tenant):
        raise KeyError_(f"no API key with id {key_id!r}")
    info, stored_hash = found[-1]
    store.insert("api_keys", [[key_id], [info.tenant], [info.role], [stored_hash], [info.name],
                              [int(info.created_at * 1000)], [True], [row_version(clock())]],
                 ("key_id", "tenant", "role", "key_hash", "name", "created_at", "revoked",
                  "version"))
    return ApiKey(info.key_id, info.tenant, info.role, info.name, info.created_at, True)
