"""ClearML server calls besides events.* that the ClearML SDK makes (`Task.init`, reporting,
`task.close()`): auth.login, projects.* and tasks.*, in clearml-server's shapes. HTTP only:
shapes in `shapes`, SQL in `store`, the call convention in `query_api.clearml.calls`.

Roles: reads need a reader key, writes (create, edit, status changes, ping) an admin key, as
for events. Every entity belongs to the tenant of the calling key; another tenant's id reads as
unknown (400 invalid_task_id / invalid_project_id, as clearml-server answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from fastapi import APIRouter

from query_api.clearml import shapes, store, tokens
from query_api.clearml import task_events_store as task_events_db
from query_api.clearml.caller import token_secret
from query_api.clearml.calls import TASK_DOC, Call, action, doc, get_bool, get_str_list, task_param
from query_api.clearml.envelope import INVALID_PROJECT_ID, INVALID_TASK_ID, CallError
from query_api.errors import bad_param
from query_api.params import get_choice, get_int, get_str

__all__ = ["raise_last_iterations", "router"]

router = APIRouter()

MAX_PAGE_SIZE = 500
_TAG = "clearml server"


def _lock(call: Call) -> asyncio.Lock:
    """One writer at a time per process: edits are read-modify-write of one document."""
    return call.ctx.clearml_write_lock


# --- auth -------------------------------------------------------------------------------------

@action(router, "login", service="auth", role=None, tag=_TAG,
        summary="A session token for the caller's key (Basic access_key:secret_key)",
        body_doc=doc([], expiration_sec={"type": "integer"}))
async def login(call: Call) -> dict[str, Any]:
    exp = get_int(call.body, "expiration_sec", default=tokens.DEFAULT_EXPIRATION_S, lo=1,
                  hi=tokens.MAX_EXPIRATION_S)
    assert exp is not None
    key = call.key
    return {"token": tokens.encode(token_secret(call.ctx), key_id=key.key_id,
                                   tenant=key.tenant, role=key.role, now=call.ctx.clock(),
                                   expiration_s=exp)}


# --- projects ---------------------------------------------------------------------------------

async def _project(call: Call, project_id: str) -> dict[str, Any]:
    found = await store.get_projects(call.ctx.store, call.key.tenant, [project_id])
    if not found:
        raise CallError(400, "INVALID_PARAMETERS", f"invalid project id: {project_id}",
                        INVALID_PROJECT_ID, {"parameter": "project", "value": project_id})
    return found[0]


@action(router, "get_all", service="projects", tag=_TAG,
        summary="Projects of the caller's tenant (filters: id, name regex, tags, ...)",
        body_doc=doc([], id={"type": "array"}, name={"type": "string"},
                     only_fields={"type": "array"}))
async def projects_get_all(call: Call) -> dict[str, Any]:
    docs = await store.get_projects(call.ctx.store, call.key.tenant,
                                    shapes.ids(call.body, "id"))
    docs = [d for d in docs if shapes.matches(d, call.body)]
    docs = shapes.order_and_page(docs, call.body, max_page_size=MAX_PAGE_SIZE)
    return {"projects": [shapes.project_fields(d, call.body.get("only_fields"))
                         for d in docs]}


@action(router, "get_by_id", service="projects", tag=_TAG, summary="One project",
        body_doc=doc(["project"], project={"type": "string"}))
async def projects_get_by_id(call: Call) -> dict[str, Any]:
    project_id = get_str(call.body, "project", required=True, max_len=128)
    assert project_id is not None
    return {"project": await _project(call, project_id)}


@action(router, "create", service="projects", role="admin", tag=_TAG,
        summary="Create a project", body_doc=doc(["name"], name={"type": "string"},
                                                 description={"type": "string"}))
async def projects_create(call: Call) -> dict[str, Any]:
    project = shapes.new_project(call.body, project_id=uuid.uuid4().hex,
                                 tenant=call.key.tenant, user=call.key.key_id,
                                 now=call.ctx.clock())
    async with _lock(call):
        same = [d for d in await store.get_projects(call.ctx.store, call.key.tenant)
                if d.get("name") == project["name"]]
        if same:
            raise CallError(400, "INVALID_PARAMETERS",
                            f"project {project['name']!r} already exists", 801,
                            {"parameter": "name", "value": project["name"]})
        await store.put_project(call.ctx.store, call.key.tenant, project,
                                version=call.ctx.versions())
    return {"id": project["id"]}


@action(router, "update", service="projects", role="admin", tag=_TAG,
        summary="Update a project's name, description or tags",
        body_doc=doc(["project"], project={"type": "string"}))
async def projects_update(call: Call) -> dict[str, Any]:
    project_id = get_str(call.body, "project", required=True, max_len=128)
    assert project_id is not None
    async with _lock(call):
        project = await _project(call, project_id)
        fields = {k: v for k, v in call.body.items()
                  if k in ("name", "description", "tags", "system_tags",
                           "default_output_destination")}
        checked = shapes.new_project({**project, **fields}, project_id=project_id,
                                     tenant=call.key.tenant, user=project["user"],
                                     now=call.ctx.clock())
        if fields:
            fields["last_update"] = checked["last_update"]
            project.update(fields)
            project["basename"] = checked["basename"]
            await store.put_project(call.ctx.store, call.key.tenant, project,
                                    version=call.ctx.versions())
    return {"updated": 1 if fields else 0, "fields": fields}


# --- tasks ------------------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def _edited(call: Call, task_id: str) -> AsyncIterator[dict[str, Any]]:
    """The task, read under the write lock and stored (newer version) when the block ends
    without an error."""
    async with _lock(call):
        task = (await _tasks(call, [task_id]))[0]
        yield task
        await store.put_task(call.ctx.store, call.key.tenant, task, version=call.ctx.versions())


async def _tasks(call: Call, ids: list[str]) -> list[dict[str, Any]]:
    found = await store.get_tasks(call.ctx.store, call.key.tenant, ids)
    missing = sorted(set(ids) - {d["id"] for d in found})
    if missing:
        raise CallError(400, "INVALID_PARAMETERS", f"invalid task id: {missing[0]}",
                        INVALID_TASK_ID, {"parameter": "task", "value": missing[:20]})
    iters = await store.last_iterations(call.ctx.store, call.key.tenant, ids)
    for d in found:
        d["last_iteration"] = max(int(d.get("last_iteration") or 0), iters.get(d["id"], 0))
    return found


async def raise_last_iterations(call: Call, events: Sequence[Mapping[str, Any]]) -> None:
    """Store the highest iteration that accepted `events` report per task in the task's
    `last_iteration`, as clearml-server does when it adds events, so
    `clearml_tasks.last_iteration` is current for analysts without waiting for the next tasks.*
    write. Tasks not created through tasks.create have no row and are left alone; nothing is
    written (and the write lock is not taken) when no value rises."""
    reported: dict[str, int] = {}
    for e in events:  # as sent: `iter` may be absent (0) or an integral float
        it = e.get("iter") if e["type"] != "log" else None
        if it is not None and not isinstance(it, bool) and int(it) == it:
            reported[e["task"]] = max(reported.get(e["task"], 0), int(it))
    if not reported:
        return

    def rising(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [d for d in docs if reported[d["id"]] > int(d.get("last_iteration") or 0)]

    tenant = call.key.tenant
    if not rising(await store.get_tasks(call.ctx.store, tenant, list(reported))):
        return
    async with _lock(call):
        for task in rising(await store.get_tasks(call.ctx.store, tenant, list(reported))):
            task["last_iteration"] = reported[task["id"]]
            await store.put_task(call.ctx.store, tenant, task, version=call.ctx.versions())


@action(router, "create", service="tasks", role="admin", tag=_TAG, summary="Create a task",
        body_doc=doc(["name", "type"], name={"type": "string"}, type={"type": "string"},
                     project={"type": "string"}))
async def tasks_create(call: Call) -> dict[str, Any]:
    task = shapes.new_task(call.body, task_id=uuid.uuid4().hex, tenant=call.key.tenant,
                           user=call.key.key_id, now=call.ctx.clock())
    if task.get("project"):
        await _project(call, task["project"])
    await store.put_task(call.ctx.store, call.key.tenant, task, version=call.ctx.versions())
    return {"id": task["id"]}


@action(router, "get_by_id", service="tasks", tag=_TAG, summary="One task",
        body_doc=doc(["task"], task=TASK_DOC))
async def tasks_get_by_id(call: Call) -> dict[str, Any]:
    return {"task": (await _tasks(call, [task_param(call)]))[0]}


@action(router, "get_all", service="tasks", tag=_TAG,
        summary="Tasks of the caller's tenant (filters: id, name regex, project, status, ...)",
        body_doc=doc([], id={"type": "array"}, name={"type": "string"},
                     project={"type": "array"}, only_fields={"type": "array"}))
async def tasks_get_all(call: Call) -> dict[str, Any]:
    b = call.body
    docs = await store.get_tasks(call.ctx.store, call.key.tenant, shapes.ids(b, "id"),
                                 projects=shapes.ids(b, "project"))
    docs = [d for d in docs if shapes.matches(d, b)]
    docs = shapes.order_and_page(docs, b, max_page_size=MAX_PAGE_SIZE)
    iters = await store.last_iterations(call.ctx.store, call.key.tenant, [d["id"] for d in docs])
    for d in docs:
        d["last_iteration"] = max(int(d.get("last_iteration") or 0), iters.get(d["id"], 0))
    return {"tasks": [shapes.project_fields(d, b.get("only_fields")) for d in docs]}


@action(router, "edit", service="tasks", role="admin", tag=_TAG,
        summary="Edit a task (in status created, or with force)",
        body_doc=doc(["task"], task=TASK_DOC, force={"type": "boolean"}))
async def tasks_edit(call: Call) -> dict[str, Any]:
    task_id = task_param(call)
    get_bool(call.body, "force", False)
    async with _lock(call):
        task = (await _tasks(call, [task_id]))[0]
        fields = shapes.edit_task(task, call.body, user=call.key.key_id, now=call.ctx.clock())
        if task.get("project") and "project" in fields:
            await _project(call, task["project"])
        if fields:
            await store.put_task(call.ctx.store, call.key.tenant, task, version=call.ctx.versions())
    return {"updated": 1 if fields else 0, "fields": fields}


async def _status(call: Call, new_status: str, **extra: Any) -> dict[str, Any]:
    b = call.body
    task_id = task_param(call)
    force = get_bool(b, "force", False)
    reason = get_str(b, "status_reason", default="", max_len=4096) or ""
    message = get_str(b, "status_message", default="", max_len=4096) or ""
    async with _edited(call, task_id) as task:
        now = call.ctx.clock()
        if new_status == "in_progress" and not task.get("started"):
            extra["started"] = shapes.iso(now)
        fields = shapes.change_status(task, new_status, force=force, reason=reason,
                                      message=message, user=call.key.key_id, now=now,
                                      **extra)
    return {"updated": 1, "fields": fields}


@action(router, "started", service="tasks", role="admin", tag=_TAG,
        summary="Mark a task in_progress", body_doc=doc(["task"], task=TASK_DOC))
async def tasks_started(call: Call) -> dict[str, Any]:
    res = await _status(call, "in_progress")
    return {**res, "started": res["updated"]}


@action(router, "stopped", service="tasks", role="admin", tag=_TAG,
        summary="Mark a task stopped", body_doc=doc(["task"], task=TASK_DOC))
async def tasks_stopped(call: Call) -> dict[str, Any]:
    return await _status(call, "stopped", completed=shapes.iso(call.ctx.clock()))


@action(router, "completed", service="tasks", role="admin", tag=_TAG,
        summary="Mark a task completed", body_doc=doc(["task"], task=TASK_DOC))
async def tasks_completed(call: Call) -> dict[str, Any]:
    if get_bool(call.body, "publish", False):
        raise bad_param("publish", True, "publishing tasks is not served by Vitals", [False])
    res = await _status(call, "completed", completed=shapes.iso(call.ctx.clock()))
    return {**res, "published": 0}


@action(router, "failed", service="tasks", role="admin", tag=_TAG,
        summary="Mark a task failed", body_doc=doc(["task"], task=TASK_DOC))
async def tasks_failed(call: Call) -> dict[str, Any]:
    return await _status(call, "failed")


@action(router, "close", service="tasks", role="admin", tag=_TAG,
        summary="Mark a task closed", body_doc=doc(["task"], task=TASK_DOC))
async def tasks_close(call: Call) -> dict[str, Any]:
    return await _status(call, "closed")


@action(router, "reset", service="tasks", role="admin", tag=_TAG,
        summary="Reset a task to created, deleting its events (the SDK reuses a dev task so)",
        body_doc=doc(["task"], task=TASK_DOC, force={"type": "boolean"},
                     clear_all={"type": "boolean"}))
async def tasks_reset(call: Call) -> dict[str, Any]:
    task_id = task_param(call)
    force = get_bool(call.body, "force", False)
    clear_all = get_bool(call.body, "clear_all", False)
    async with _edited(call, task_id) as task:
        fields = shapes.reset_task(task, force=force, clear_all=clear_all,
                                   user=call.key.key_id, now=call.ctx.clock())
        await task_events_db.delete_task(call.ctx.store, call.key.tenant, task_id)
    return {"updated": 1, "fields": fields, "dequeued": {}, "deleted_models": 0,
            "updated_children": 0, "updated_models": 0, "urls": None}


@action(router, "ping", service="tasks", role="admin", tag=_TAG,
        summary="Refresh a task's last_update", body_doc=doc(["task"], task=TASK_DOC))
async def tasks_ping(call: Call) -> dict[str, Any]:
    task_id = task_param(call)
    async with _edited(call, task_id) as task:
        task["last_update"] = shapes.iso(call.ctx.clock())
    return {}


@action(router, "set_requirements", service="tasks", role="admin", tag=_TAG,
        summary="Set a task's script.requirements (pip, conda, ...)",
        body_doc=doc(["task", "requirements"], task=TASK_DOC, requirements={"type": "object"}))
async def tasks_set_requirements(call: Call) -> dict[str, Any]:
    task_id = task_param(call)
    requirements = call.body.get("requirements")
    if not isinstance(requirements, dict):
        raise bad_param("requirements", requirements,
                        "requirements must be an object (e.g. {pip: '...'})")
    async with _edited(call, task_id) as task:
        script = task.get("script")
        task["script"] = {**(script if isinstance(script, dict) else {}),
                          "requirements": requirements}
        now = shapes.iso(call.ctx.clock())
        task.update(last_update=now, last_change=now, last_changed_by=call.key.key_id)
    return {"updated": 1, "fields": {"script.requirements": requirements}}


@action(router, "edit_hyper_params", service="tasks", role="admin", tag=_TAG,
        summary="Add or replace hyperparameters (what task.connect() and argparse store)",
        body_doc=doc(["task", "hyperparams"], task=TASK_DOC, hyperparams={"type": "array"},
                     replace_hyperparams={"type": "string", "enum": ["none", "section", "all"]},
                     force={"type": "boolean"}))
async def tasks_edit_hyper_params(call: Call) -> dict[str, Any]:
    task_id = task_param(call)
    replace = get_choice(call.body, "replace_hyperparams", ("none", "section", "all"),
                         default="none")
    force = get_bool(call.body, "force", False)
    assert replace is not None
    async with _edited(call, task_id) as task:
        updated = shapes.edit_hyperparams(task, call.body.get("hyperparams"), replace=replace,
                                          force=force, user=call.key.key_id,
                                          now=call.ctx.clock())
    return {"updated": updated}


@action(router, "edit_configuration", service="tasks", role="admin", tag=_TAG,
        summary="Add or replace configuration objects (connect_configuration)",
        body_doc=doc(["task", "configuration"], task=TASK_DOC, configuration={"type": "array"},
                     replace_configuration={"type": "boolean"}, force={"type": "boolean"}))
async def tasks_edit_configuration(call: Call) -> dict[str, Any]:
    task_id = task_param(call)
    replace = get_bool(call.body, "replace_configuration", False)
    force = get_bool(call.body, "force", False)
    async with _edited(call, task_id) as task:
        updated = shapes.edit_configuration(task, call.body.get("configuration"),
                                            replace=replace, force=force,
                                            user=call.key.key_id, now=call.ctx.clock())
    return {"updated": updated}


@action(router, "get_hyper_params", service="tasks", tag=_TAG,
        summary="Hyperparameters of tasks, by section and name",
        body_doc=doc(["tasks"], tasks={"type": "array", "items": TASK_DOC}))
async def tasks_get_hyper_params(call: Call) -> dict[str, Any]:
    tasks = get_str_list(call.body, "tasks", max_items=100)
    found = await _tasks(call, tasks)
    return {"params": [{"task": t["id"], "hyperparams": shapes.hyperparams_list(t)}
                       for t in found]}


@action(router, "get_configurations", service="tasks", tag=_TAG,
        summary="Configuration objects of tasks (all, or those named)",
        body_doc=doc(["tasks"], tasks={"type": "array", "items": TASK_DOC},
                     names={"type": "array", "items": {"type": "string"}}))
async def tasks_get_configurations(call: Call) -> dict[str, Any]:
    tasks = get_str_list(call.body, "tasks", max_items=100)
    names = shapes.ids(call.body, "names")
    found = await _tasks(call, tasks)
    return {"configurations": [{"task": t["id"],
                                "configuration": shapes.configuration_list(t, names)}
                               for t in found]}
