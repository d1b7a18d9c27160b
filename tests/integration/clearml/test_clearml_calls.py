"""The ClearML call convention against a live API, without the SDK: any method and version
prefix, credentials and session tokens, the `{meta, data}` envelope with clearml-server's result
codes on every answer (400/401/403/404/405/413/500), tasks and projects per tenant."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import orjson

from pipeline.storage import keys
from query_api.clearml import store as clearml_store
from tests.integration.clearml.task_events_helpers import add_batch, log, scalar


def basic(key: str, access: str | None = None) -> dict[str, str]:
    pair = f"{access or key.split('_')[1]}:{key}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


async def send(stack: Any, method: str, path: str, body: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], Any]:
    content = None if body is None else orjson.dumps(body)
    r = await stack.http.request(method, path, content=content, headers={
        "Content-Type": "application/json", **(headers or {})})
    return r.status_code, r.json(), r.headers


def check_meta(doc: dict[str, Any], name: str, code: int, subcode: int = 0) -> None:
    meta = doc["meta"]
    assert (meta["endpoint"]["name"], meta["result_code"], meta["result_subcode"]) == (
        name, code, subcode), doc
    assert set(meta) >= {"id", "trx", "result_msg", "error_stack", "error_data"}
    assert "data" in doc


async def login(stack: Any, key: str) -> str:
    status, doc, _ = await send(stack, "GET", "/v2.23/auth.login", None, basic(key))
    assert status == 200, doc
    return str(doc["data"]["token"])


async def test_calls_tokens_and_error_envelopes(stack_factory, monkeypatch):
    stack = await stack_factory(max_body_bytes=64 * 1024)
    admin = await stack.key("acme", "admin")
    reader = await stack.key("acme", "reader")

    # auth.login: Basic access_key:secret_key, any method, query string merged into the body
    before = time.time()
    status, doc, _ = await send(stack, "POST", "/auth.login?expiration_sec=120", {},
                                basic(admin))
    assert status == 200
    check_meta(doc, "auth.login", 200)
    claims = orjson.loads(base64.urlsafe_b64decode(doc["data"]["token"].split(".")[1] + "=="))
    assert before + 119 <= claims["exp"] <= time.time() + 121
    assert claims["identity"]["company"] == "acme" and claims["api_version"] == "2.23"
    token = await login(stack, admin)
    rtoken = await login(stack, reader)
    for headers, sub in ((basic(admin, "000000000000"), 22), ({}, 20),
                         ({"Authorization": "Basic !!"}, 22),
                         ({"Authorization": f"Bearer {token[:-3]}xyz"}, 30)):
        status, doc, _ = await send(stack, "GET", "/v2.23/auth.login", {}, headers)
        assert status == 401
        check_meta(doc, "auth.login", 401, sub)
        assert doc["error"] == "UNAUTHORIZED"
    auth = {"Authorization": f"Bearer {token}"}
    rauth = {"Authorization": f"Bearer {rtoken}"}

    # projects and tasks: GET with a JSON body, the SDK's default
    status, doc, _ = await send(stack, "GET", "/v2.23/projects.create", {"name": "p1"}, auth)
    assert status == 200, doc
    project = doc["data"]["id"]
    status, doc, _ = await send(stack, "GET", "/v2.23/projects.create", {"name": "p1"}, auth)
    assert status == 400 and doc["meta"]["result_subcode"] == 801
    status, doc, _ = await send(stack, "PUT", "/v2.13/tasks.create",
                                {"name": "t1", "type": "training", "project": project}, auth)
    assert status == 200, doc
    task = doc["data"]["id"]
    status, doc, _ = await send(stack, "GET", "/v2.23/tasks.edit",
                                {"task": task, "script": {"entry_point": "a.py"}}, auth)
    assert doc["data"]["updated"] == 1 and doc["data"]["fields"]["script"] == {
        "entry_point": "a.py"}
    status, doc, _ = await send(stack, "GET", "/v2.23/tasks.started", {"task": task}, auth)
    assert (doc["data"]["started"], doc["data"]["fields"]["status"]) == (1, "in_progress")
    # reported events raise the task's last_iteration at once, in the table too
    status, doc = await add_batch(stack, admin, [scalar(task, 3, 0.5), scalar(task, 7, 0.25),
                                                 log(task, 9, "not an iteration")])
    assert (status, doc["data"]["added"]) == (200, 3), doc
    rows = await stack.rows("SELECT last_iteration FROM {db}.clearml_tasks FINAL")
    assert rows == [(7,)]
    status, doc = await add_batch(stack, admin, [scalar(task, 2, 0.75)])
    assert status == 200, doc
    rows = await stack.rows("SELECT last_iteration FROM {db}.clearml_tasks FINAL")
    assert rows == [(7,)]
    status, doc, _ = await send(stack, "GET", "/v2.23/tasks.edit", {"task": task, "name": "x"},
                                auth)
    assert status == 400
    check_meta(doc, "tasks.edit", 400, 110)
    status, doc, _ = await send(stack, "GET", "/v2.23/tasks.ping", {"task": task}, auth)
    assert (status, doc["data"]) == (200, {})
    status, doc, _ = await send(stack, "GET", "/v2.23/tasks.completed", {"task": task}, auth)
    assert doc["data"]["fields"]["status"] == "completed"
    status, doc, _ = await send(stack, "GET", "/v2.23/tasks.get_by_id", {"task": task}, rauth)
    got = doc["data"]["task"]
    assert (got["name"], got["status"], got["project"], got["script"], got["last_iteration"]) \
        == ("t1", "completed", project, {"entry_point": "a.py"}, 7)
    status, doc, _ = await send(stack, "GET", "/v2.23/tasks.get_all?only_fields=name",
                                {"project": [project]}, rauth)
    assert doc["data"]["tasks"] == [{"id": task, "name": "t1"}]
    rows = await stack.rows("SELECT tenant, name, status, started IS NOT NULL, "
                            "completed IS NOT NULL, last_iteration FROM {db}.clearml_tasks FINAL")
    assert rows == [("acme", "t1", "completed", 1, 1, 7)]

    # roles and tenants: a reader cannot write; another tenant sees nothing
    status, doc, _ = await send(stack, "GET", "/v2.23/tasks.create",
                                {"name": "t2", "type": "training"}, rauth)
    assert status == 403
    check_meta(doc, "tasks.create", 403, 20)
    rival = await login(stack, await stack.key("rival", "admin"))
    rv = {"Authorization": f"Bearer {rival}"}
    status, doc, _ = await send(stack, "GET", "/v2.23/tasks.get_by_id", {"task": task}, rv)
    assert status == 400
    check_meta(doc, "tasks.get_by_id", 400, 101)
    status, doc, _ = await send(stack, "GET", "/v2.23/tasks.get_all", {}, rv)
    assert doc["data"]["tasks"] == []
    status, doc, _ = await send(stack, "GET", "/v2.23/projects.get_all", {}, rv)
    assert doc["data"]["projects"] == []

    # 400 names the parameter; the details are ClearML's error_data too
    status, doc, _ = await send(stack, "GET", "/v2.23/tasks.create", {"type": "training"}, auth)
    assert status == 400
    check_meta(doc, "tasks.create", 400, 12)
    assert doc["details"]["parameter"] == doc["meta"]["error_data"]["parameter"] == "name"
    status, doc, _ = await send(stack, "GET", "/vx/tasks.get_all", {}, auth)
    assert status == 400 and doc["meta"]["result_code"] == 400

    # 404 unknown call and unknown task's events; 405; 413; 500
    status, doc, _ = await send(stack, "GET", "/v2.23/users.get_vaults", {}, auth)
    assert status == 404
    check_meta(doc, "users.get_vaults", 404)
    assert doc["meta"]["result_msg"] == (
        "Unable to find endpoint for name users.get_vaults and version 2.23")
    status, doc, _ = await send(stack, "GET", "/v2.23/events.get_task_log", {"task": "nope"},
                                auth)
    assert status == 404
    check_meta(doc, "events.get_task_log", 404)
    status, doc, headers = await send(stack, "OPTIONS", "/v2.23/tasks.get_all", None, auth)
    assert status == 405 and "GET" in headers["allow"]
    check_meta(doc, "tasks.get_all", 405)
    status, doc, _ = await send(stack, "POST", "/v2.23/events.add_batch",
                                {"x": "y" * 70_000}, auth)
    assert status == 413 and doc["error"] == "PAYLOAD_TOO_LARGE"
    check_meta(doc, "events.add_batch", 413)

    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(clearml_store, "get_projects", broken)
    status, doc, _ = await send(stack, "GET", "/v2.23/projects.get_all", {}, auth)
    assert status == 500 and doc["error"] == "INTERNAL"
    check_meta(doc, "projects.get_all", 500)
    assert "boom" not in orjson.dumps(doc).decode()

    # a revoked key's tokens stop working (after the key cache, CACHE_S)
    assert stack.rt.store is not None
    await stack.rt.store.call(lambda s: keys.revoke_key(s, admin.split("_")[1]))
    deadline = time.monotonic() + 15
    while True:
        status, doc, _ = await send(stack, "GET", "/v2.23/tasks.get_all", {}, auth)
        if status == 401 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert status == 401
    check_meta(doc, "tasks.get_all", 401, 30)
