"""All SQL of the ClearML server calls: API keys by id (session tokens), and the
`clearml_tasks` / `clearml_projects` tables of migration 009. Every read and write is scoped to
one tenant. An entity is one JSON document (`doc`) plus the columns analysts filter on; a write
inserts a new version of the row (ReplacingMergeTree(version), read with FINAL).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from pipeline.storage.clickhouse import AsyncStore
from pipeline.storage.keys import ApiKey

__all__ = ["MAX_ROWS", "get_projects", "get_tasks", "key_by_id", "last_iterations",
           "put_project", "put_task", "task_names"]

#: At most this many entities are read for one get_all (then filtered and paged in Python).
MAX_ROWS = 10_000

_TASK_COLUMNS = ("tenant", "id", "name", "project", "type", "status", "status_reason",
                 "status_message", "comment", "user", "parent", "tags", "system_tags", "created",
                 "started", "completed", "last_update", "last_iteration", "doc", "deleted",
                 "version")
_PROJECT_COLUMNS = ("tenant", "id", "name", "description", "user", "tags", "system_tags",
                    "created", "last_update", "doc", "deleted", "version")
async def key_by_id(store: AsyncStore, key_id: str) -> ApiKey | None:
    """The live key with this id, else None."""
    rows = await store.rows(
        f"SELECT key_id, tenant, role, name, toUnixTimestamp64Milli(created_at), revoked "
        f"FROM {store.database}.api_keys FINAL WHERE key_id = {{k:String}}", {"k": key_id})
    if not rows or rows[-1][5]:
        return None
    r = rows[-1]
    return ApiKey(r[0], r[1], r[2], r[3], r[4] / 1000, False)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _strs(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


async def _docs(store: AsyncStore, table: str, tenant: str, ids: Sequence[str] | None,
                where: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    sql = (f"SELECT doc FROM {store.database}.{table} FINAL WHERE tenant = {{t:String}} "
           f"AND NOT deleted")
    if ids is not None:
        sql += " AND id IN {ids:Array(String)}"
    if where:
        sql += " AND " + where
    rows = await store.rows(sql + f" ORDER BY created, id LIMIT {MAX_ROWS}",
                            {"t": tenant, "ids": list(ids or ()), **params})
    return [orjson.loads(r[0]) for r in rows]


async def get_tasks(store: AsyncStore, tenant: str, ids: Sequence[str] | None = None, *,
                    projects: Sequence[str] | None = None) -> list[dict[str, Any]]:
    where, params = "", {}
    if projects is not None:
        where, params = "project IN {p:Array(String)}", {"p": list(projects)}
    return await _docs(store, "clearml_tasks", tenant, ids, where, params)


async def get_projects(store: AsyncStore, tenant: str, ids: Sequence[str] | None = None
                       ) -> list[dict[str, Any]]:
    return await _docs(store, "clearml_projects", tenant, ids, "", {})


async def put_task(store: AsyncStore, tenant: str, doc: dict[str, Any], *, version: int,
                   deleted: bool = False) -> None:
    row = [tenant, doc["id"], doc.get("name") or "", doc.get("project") or "",
           doc.get("type") or "", doc.get("status") or "", doc.get("status_reason") or "",
           doc.get("status_message") or "", doc.get("comment") or "", doc.get("user") or "",
           doc.get("parent") or "", _strs(doc.get("tags")), _strs(doc.get("system_tags")),
           _time(doc.get("created")), _time(doc.get("started")), _time(doc.get("completed")),
           _time(doc.get("last_update")), int(doc.get("last_iteration") or 0),
           orjson.dumps(doc).decode(), deleted, version]
    await store.insert("clearml_tasks", [[v] for v in row], _TASK_COLUMNS)


async def put_project(store: AsyncStore, tenant: str, doc: dict[str, Any], *, version: int,
                      deleted: bool = False) -> None:
    row = [tenant, doc["id"], doc.get("name") or "", doc.get("description") or "",
           doc.get("user") or "", _strs(doc.get("tags")), _strs(doc.get("system_tags")),
           _time(doc.get("created")), _time(doc.get("last_update")),
           orjson.dumps(doc).decode(), deleted, version]
    await store.insert("clearml_projects", [[v] for v in row], _PROJECT_COLUMNS)


async def task_names(store: AsyncStore, tenant: str, tasks: Sequence[str]) -> dict[str, str]:
    """id → name of the tenant's tasks among `tasks` (tasks created through tasks.create)."""
    rows = await store.rows(
        f"SELECT id, name FROM {store.database}.clearml_tasks FINAL WHERE tenant = {{t:String}} "
        f"AND id IN {{ids:Array(String)}} AND NOT deleted", {"t": tenant, "ids": list(tasks)})
    return {str(i): str(n) for i, n in rows}


async def last_iterations(store: AsyncStore, tenant: str, tasks: Sequence[str]
                          ) -> dict[str, int]:
    """The highest iteration each task reported metric events for (clearml-server keeps it in
    the task's `last_iteration`)."""
    if not tasks:
        return {}
    rows = await store.rows(
        f"SELECT task, max(iter) FROM {store.database}.task_metric_events WHERE "
        f"tenant = {{t:String}} AND task IN {{tasks:Array(String)}} GROUP BY task",
        {"t": tenant, "tasks": list(tasks)})
    return {str(t): int(i) for t, i in rows}
