"""The role matrix: every route × every role (reader, admin, superadmin, no key) × own/other
tenant → the expected HTTP status.

Data-driven: one `Row` per route. To cover a new route family, append rows to `ROWS` (a
`call` that builds the request for a caller key and a target tenant, and the expected
statuses). `test_every_route_has_a_row` fails when a route exists without a row.

"own" targets the caller's tenant (acme), "other" a second tenant (rival). For routes that take
no tenant, "other" sends the other tenant's resource (an endpoint id, a key id, a task id) or, for
Coopr routes, the other tenant in `Coopr-TenantID`.

Task events (`POST /events.<action>`, also `/v{version}/events.<action>`): each tenant owns a
task (`TASK`) holding a scalar, a log line, a plot and a debug image; a task belongs to the tenant
whose events reported it, another tenant's key gets 403 and a superadmin reads every tenant.
Writes go to tasks no read row looks at (`ADD_TASK`, and one fresh task of a pool per
delete_for_task, clear_task_log and delete_for_model call), so the order of the rows never
changes an expected status.

ClearML server calls (`auth.login`, `projects.*`, `tasks.*`): each tenant owns a project and a
task created through the API (`stack.role_matrix["clearml"]`); another tenant's id reads as
unknown (400, clearml-server's invalid id), for a superadmin too: tasks and projects are per
tenant. Status changes use `force`, so the order of the rows does not matter either.

Every ClearML call answers any method under any version prefix from one endpoint; a row for one
of its routes covers the others (`test_every_route_has_a_row`), and the GET rows check the
SDK's form (GET with a JSON body).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from pipeline.sdk.producer import Producer
from tests.integration.clearml.task_events_helpers import log, scalar, wait_count
from tests.integration.clearml.test_task_events_media import image, plot

OWN, OTHER = "acme", "rival"
ROLES = ("reader", "admin", "superadmin")
ENDPOINT = {OWN: 1, OTHER: 2}
TASK = {OWN: "rm-task-acme", OTHER: "rm-task-rival"}
#: Tasks the add/add_batch rows write to (owned by their tenant; no read row looks at them).
ADD_TASK = {OWN: "rm-add-acme", OTHER: "rm-add-rival"}
#: Fresh tasks per delete_for_task, clear_task_log and delete_for_model call: 4 callers target
#: "own" and 3 "other" in each of the two (unversioned, versioned) delete_for_task rows and the
#: one row of each other action.
DELETE_POOL = 16


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    json: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None


# call(stack, caller key or None, target tenant) -> request
Call = Callable[[Any, str | None, str], Awaitable[Req]]
# check(caller role or "anon", target tenant, response) -> a failure message or None
Check = Callable[[str, str, httpx.Response], str | None]


@dataclass(frozen=True)
class Row:
    route: str                 # "METHOD /path" as FastAPI declares it
    call: Call
    anon: int                  # no key at all
    reader: tuple[int, int]    # (own tenant, other tenant)
    admin: tuple[int, int]
    superadmin: tuple[int, int]
    check: Check | None = None  # more than the status, for responses that carry outcomes


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def coopr(key: str | None, tenant: str) -> dict[str, str]:
    if not key:
        return {}
    return {"Coopr-UserID": "admin", "Coopr-ApiKey": key, "Coopr-TenantID": tenant}


def get(path: str) -> Call:
    async def call(stack: Any, key: str | None, tenant: str) -> Req:
        return Req("GET", path.format(tenant=tenant), headers=bearer(key))
    return call


def coopr_get(path: str) -> Call:
    async def call(stack: Any, key: str | None, tenant: str) -> Req:
        return Req("GET", path, headers=coopr(key, tenant))
    return call


def stats(path: str, field_: str) -> Call:
    async def call(stack: Any, key: str | None, tenant: str) -> Req:
        return Req("POST", path, {field_: ENDPOINT[tenant]}, bearer(key))
    return call


def vast_report(path: str, body: dict[str, Any]) -> Call:
    """A vast.ai worker report (`mtoken` = the key) whose body is refused after the role
    check (400), so the role gate is exercised and nothing is stored. There is no tenant in a
    report: the key's tenant owns it, so "other" reports to an endpoint id no row reads."""
    async def call(stack: Any, key: str | None, tenant: str) -> Req:
        ep = 7700 + ENDPOINT[tenant]
        return Req("POST", path.format(ep=ep, ag=ep * 10),
                   {**body, **({"mtoken": key} if key else {})})
    return call


async def sql_call(stack: Any, key: str | None, tenant: str) -> Req:
    return Req("POST", "/sql", {"query": "SELECT 1"}, bearer(key))


async def create_key(stack: Any, key: str | None, tenant: str) -> Req:
    return Req("POST", "/admin/keys", {"tenant": tenant, "role": "reader"}, bearer(key))


async def revoke_key(stack: Any, key: str | None, tenant: str) -> Req:
    target = await stack.key(tenant, "reader")
    key_id = target.split("_")[1]
    return Req("DELETE", f"/admin/keys/{key_id}", headers=bearer(key))


def own_rows(who: str, r: httpx.Response, field_: str) -> str | None:
    """A dashboard listing holds only the caller's tenant's rows (every tenant's for a
    superadmin, whose rows must include the other tenant's)."""
    if r.status_code != 200:
        return None
    tenants = {row["tenant"] for row in r.json()[field_]}
    if who == "superadmin":
        return None if OTHER in tenants else f"{field_}: superadmin sees {tenants}"
    return None if tenants == {OWN} else f"{field_}: {who} sees tenants {tenants}"


def metrics_get(path: str) -> Call:
    async def call(stack: Any, key: str | None, tenant: str) -> Req:
        return Req("GET", path.format(ep=ENDPOINT[tenant]), headers=bearer(key))
    return call


async def batch_metrics(stack: Any, key: str | None, tenant: str) -> Req:
    return Req("POST", "/v2/endpoints/metrics/batch",
               {"endpointIds": [ENDPOINT[tenant]], "timeframe": "1h"}, bearer(key))


def batch_outcome(who: str, tenant: str, r: httpx.Response) -> str | None:
    """The batch route answers 200 to every authenticated caller: an endpoint the key may not
    read is reported in `errors` (with the status the single route would answer), not as the
    HTTP status of the call."""
    if r.status_code != 200:
        return None
    doc = r.json()
    ep = str(ENDPOINT[tenant])
    if tenant == OTHER and who in ("reader", "admin"):
        ok = doc["endpoints"] == [] and [(e["endpointId"], e["status"], e["error"])
                                         for e in doc["errors"]] == \
            [(ep, 403, "INSUFFICIENT_PERMISSIONS")]
    else:
        ok = doc["errors"] == [] and [e["endpointId"] for e in doc["endpoints"]] == [ep]
    return None if ok else f"batch outcome {doc['endpoints']!r} {doc['errors']!r}"


async def put_pricing(stack: Any, key: str | None, tenant: str) -> Req:
    return Req("PUT", f"/v2/endpoints/{ENDPOINT[tenant]}/pricing",
               {"gpuSecondPrice": 0.0005, "requestPrice": 0.0001, "monthlyBudget": 100},
               bearer(key))


# Task events. Body(stack, target tenant, versioned path?) -> JSON body.
Body = Callable[[Any, str, bool], Awaitable[dict[str, Any]]]
VERSION = "2.9"


def events_path(action: str, versioned: bool) -> str:
    return f"/v{VERSION}/events.{action}" if versioned else f"/events.{action}"


def task_body(**extra: Any) -> Body:
    async def body(stack: Any, tenant: str, versioned: bool) -> dict[str, Any]:
        return {"task": TASK[tenant], **extra}
    return body


def tasks_body(**extra: Any) -> Body:
    async def body(stack: Any, tenant: str, versioned: bool) -> dict[str, Any]:
        return {"tasks": [TASK[tenant]], **extra}
    return body


async def debug_images_body(stack: Any, tenant: str, versioned: bool) -> dict[str, Any]:
    # 2.9 reads the 2.7 shape (metrics); the unversioned call without metrics the 2.1 shape
    return {"metrics": [{"task": TASK[tenant]}]} if versioned else {"task": TASK[tenant]}


async def next_image_body(stack: Any, tenant: str, versioned: bool) -> dict[str, Any]:
    # the scroll id of get_debug_image_sample, read by a superadmin (signed for that tenant)
    r = await stack.http.post("/events.get_debug_image_sample",
                              json={"task": TASK[tenant], "metric": "img", "variant": "v"},
                              headers=bearer(stack.role_matrix["superadmin"]))
    assert r.status_code == 200, r.text
    return {"task": TASK[tenant], "scroll_id": r.json()["data"]["scroll_id"]}


async def delete_body(stack: Any, tenant: str, versioned: bool) -> dict[str, Any]:
    return {"task": stack.role_matrix["delete"][tenant].pop()}


async def model_body(stack: Any, tenant: str, versioned: bool) -> dict[str, Any]:
    return {"model": stack.role_matrix["delete"][tenant].pop()}


async def plots_body(stack: Any, tenant: str, versioned: bool) -> dict[str, Any]:
    return {"metrics": [{"task": TASK[tenant]}]}


async def next_plot_body(stack: Any, tenant: str, versioned: bool) -> dict[str, Any]:
    r = await stack.http.post("/events.get_plot_sample",
                              json={"task": TASK[tenant], "metric": "roc"},
                              headers=bearer(stack.role_matrix["superadmin"]))
    assert r.status_code == 200, r.text
    return {"task": TASK[tenant], "scroll_id": r.json()["data"]["scroll_id"]}


async def no_body(stack: Any, tenant: str, versioned: bool) -> dict[str, Any]:
    return {}


def event(action: str, body: Body, versioned: bool, method: str = "POST") -> Call:
    async def call(stack: Any, key: str | None, tenant: str) -> Req:
        return Req(method, events_path(action, versioned), await body(stack, tenant, versioned),
                   bearer(key))
    return call


def add_event(versioned: bool) -> Call:
    async def call(stack: Any, key: str | None, tenant: str) -> Req:
        # /events.add reads one raw JSON object
        ev = log(ADD_TASK[tenant], 0, "added")
        return Req("POST", events_path("add", versioned), headers=bearer(key),
                   content=orjson.dumps(ev))
    return call


def add_batch_events(versioned: bool) -> Call:
    async def call(stack: Any, key: str | None, tenant: str) -> Req:
        # /events.add_batch reads JSON lines, one event per line
        lines = [scalar(ADD_TASK[tenant], 0, 1.0), log(ADD_TASK[tenant], 1, "batched")]
        return Req("POST", events_path("add_batch", versioned),
                   headers={**bearer(key), "Content-Type": "application/json-lines"},
                   content=b"\n".join(orjson.dumps(e) for e in lines))
    return call


def events_ok(who: str, tenant: str, r: httpx.Response) -> str | None:
    """A 200 of an events action carries ClearML's envelope with result_code 200."""
    if r.status_code != 200:
        return None
    meta = r.json().get("meta", {})
    return None if meta.get("result_code") == 200 else f"meta {meta!r}"


def download_ok(who: str, tenant: str, r: httpx.Response) -> str | None:
    """download_task_log answers an attachment of JSON lines: the target task's one line
    (the tenant's message, so another tenant's log would show)."""
    if r.status_code != 200:
        return None
    lines = [orjson.loads(line) for line in r.text.splitlines()]
    ok = r.headers.get("content-disposition", "").startswith("attachment") and \
        [e.get("msg") for e in lines] == [f"hello {tenant}"]
    return None if ok else f"download {r.headers.get('content-disposition')!r} {r.text[:150]!r}"


def deleted_one(who: str, tenant: str, r: httpx.Response) -> str | None:
    """Each delete_for_task call targets a fresh task holding exactly one event."""
    if r.status_code != 200:
        return None
    got = r.json()["data"]
    return None if got == {"deleted": 1} else f"deleted {got!r}"


READ_ACTIONS: dict[str, Body] = {
    "get_task_events": task_body(),
    "get_task_log": task_body(),
    "download_task_log": task_body(),
    "get_task_metrics": tasks_body(),
    "get_scalar_metrics_and_variants": task_body(),
    "get_vector_metrics_and_variants": task_body(),
    "get_scalar_metric_data": task_body(metric="loss"),
    "get_task_latest_scalar_values": task_body(),
    "vector_metrics_iter_histogram": task_body(metric="vec", variant="v"),
    "scalar_metrics_iter_histogram": task_body(),
    "multi_task_scalar_metrics_iter_histogram": tasks_body(),
    "get_task_plots": task_body(),
    "get_multi_task_plots": tasks_body(),
    "debug_images": debug_images_body,
    "get_debug_image_sample": task_body(metric="img", variant="v"),
    "next_debug_image_sample": next_image_body,
    "plots": plots_body,
    "get_plot_sample": task_body(metric="roc"),
    "next_plot_sample": next_plot_body,
    "get_task_single_value_metrics": tasks_body(),
    "scalar_metrics_iter_raw": task_body(metric={"metric": "loss"}),
}


def event_rows() -> list[Row]:
    rows = []
    for versioned in (False, True):
        route = "POST /v{version}/events." if versioned else "POST /events."
        # add/add_batch write as the key's own tenant: a task another tenant reported is
        # refused whole (403), for a superadmin too (it would otherwise shadow the owner's).
        rows += [Row(route + "add", add_event(versioned), 401,
                     (403, 403), (200, 403), (200, 403), events_ok),
                 Row(route + "add_batch", add_batch_events(versioned), 401,
                     (403, 403), (200, 403), (200, 403), events_ok),
                 Row(route + "delete_for_task", event("delete_for_task", delete_body, versioned),
                     401, (403, 403), (200, 403), (200, 200), deleted_one)]
        rows += [Row(route + name, event(name, body, versioned), 401,
                     (200, 403), (200, 403), (200, 200),
                     download_ok if name == "download_task_log" else events_ok)
                 for name, body in READ_ACTIONS.items()]
    rows += [Row("POST /events.clear_task_log", event("clear_task_log", delete_body, False),
                 401, (403, 403), (200, 403), (200, 200), deleted_one),
             Row("POST /events.delete_for_model", event("delete_for_model", model_body, False),
                 401, (403, 403), (200, 403), (200, 200), deleted_one),
             # scroll ids are stateless: releasing one is a no-op any key may call
             Row("POST /events.clear_scroll", event("clear_scroll", no_body, False), 401,
                 (200, 200), (200, 200), (200, 200), events_ok),
             # the ClearML SDK's form: GET with a JSON body
             Row("GET /v{version}/events.get_task_log",
                 event("get_task_log", task_body(), True, "GET"), 401,
                 (200, 403), (200, 403), (200, 200), events_ok)]
    return rows


# ClearML server calls: auth.login, projects.*, tasks.* (per tenant; ids of the other tenant
# read as unknown, 400, for every role).
def clearml(call_name: str, body: Callable[[Any, str], dict[str, Any]],
            method: str = "POST") -> Call:
    async def call(stack: Any, key: str | None, tenant: str) -> Req:
        return Req(method, f"/v2.23/{call_name}" if method == "GET" else f"/{call_name}",
                   body(stack, tenant), bearer(key))
    return call


def cl(stack: Any, tenant: str, what: str) -> str:
    return str(stack.role_matrix["clearml"][tenant][what])


def listed_own_only(kind: str) -> Check:
    """get_all lists the caller's own tenant's entity, never the other tenant's."""
    def check(who: str, tenant: str, r: httpx.Response) -> str | None:
        if r.status_code != 200:
            return None
        got = [e["id"] for e in r.json()["data"][kind]]
        return None if len(got) == (1 if tenant == OWN else 0) else f"{kind} {got!r}"
    return check


def task_of(stack: Any, tenant: str) -> dict[str, Any]:
    return {"task": cl(stack, tenant, "task"), "force": True}


CLEARML_READ = 401, (200, 400), (200, 400), (200, 400)
CLEARML_WRITE = 401, (403, 403), (200, 400), (200, 400)


def clearml_rows() -> list[Row]:
    rows = [
        Row("POST /auth.login", clearml("auth.login", lambda s, t: {}), 401,
            (200, 200), (200, 200), (200, 200), events_ok),
        Row("POST /projects.get_all",
            clearml("projects.get_all", lambda s, t: {"id": [cl(s, t, "project")]}),
            401, (200, 200), (200, 200), (200, 200), listed_own_only("projects")),
        Row("GET /v{version}/tasks.get_all",
            clearml("tasks.get_all", lambda s, t: {"id": [cl(s, t, "task")]}, "GET"),
            401, (200, 200), (200, 200), (200, 200), listed_own_only("tasks")),
        Row("POST /projects.get_by_id",
            clearml("projects.get_by_id", lambda s, t: {"project": cl(s, t, "project")}),
            *CLEARML_READ),
        Row("POST /projects.update",
            clearml("projects.update", lambda s, t: {"project": cl(s, t, "project"),
                                                     "description": "updated"}),
            *CLEARML_WRITE),
        # a new project is the caller's own whatever the target; names are unique per tenant
        Row("POST /projects.create",
            clearml("projects.create", lambda s, t: {"name": f"rm-{uuid.uuid4().hex}"}),
            401, (403, 403), (200, 200), (200, 200)),
        Row("GET /v{version}/tasks.create",
            clearml("tasks.create", lambda s, t: {"name": "rm", "type": "training",
                                                  "project": cl(s, t, "project")}, "GET"),
            *CLEARML_WRITE),
        Row("GET /v{version}/tasks.get_by_id",
            clearml("tasks.get_by_id", lambda s, t: {"task": cl(s, t, "task")}, "GET"),
            *CLEARML_READ),
        Row("POST /tasks.edit",
            clearml("tasks.edit", lambda s, t: {**task_of(s, t), "comment": "edited"}),
            *CLEARML_WRITE),
        Row("POST /tasks.set_requirements",
            clearml("tasks.set_requirements",
                    lambda s, t: {**task_of(s, t), "requirements": {"pip": "x"}}),
            *CLEARML_WRITE),
    ]
    rows += [
        Row("POST /tasks.edit_hyper_params",
            clearml("tasks.edit_hyper_params", lambda s, t: {
                **task_of(s, t), "hyperparams": [{"section": "General", "name": "lr",
                                                  "value": "0.1"}]}), *CLEARML_WRITE),
        Row("POST /tasks.edit_configuration",
            clearml("tasks.edit_configuration", lambda s, t: {
                **task_of(s, t), "configuration": [{"name": "c", "value": "{}"}]}),
            *CLEARML_WRITE),
        Row("POST /tasks.get_hyper_params",
            clearml("tasks.get_hyper_params", lambda s, t: {"tasks": [cl(s, t, "task")]}),
            *CLEARML_READ),
        Row("POST /tasks.get_configurations",
            clearml("tasks.get_configurations", lambda s, t: {"tasks": [cl(s, t, "task")]}),
            *CLEARML_READ),
    ]
    rows += [Row(f"POST /tasks.{name}", clearml(f"tasks.{name}", task_of), *CLEARML_WRITE)
             for name in ("started", "stopped", "completed", "failed", "close", "ping",
                          "reset")]
    return rows


ROWS: list[Row] = [
    Row("GET /healthz", get("/healthz"), 200, (200, 200), (200, 200), (200, 200)),
    Row("GET /readyz", get("/readyz"), 200, (200, 200), (200, 200), (200, 200)),
    Row("GET /metrics", get("/metrics"), 200, (200, 200), (200, 200), (200, 200)),
    Row("POST /get_endpoint_stats/", stats("/get_endpoint_stats/", "id"), 401,
        (200, 403), (200, 403), (200, 200)),
    Row("POST /get_autogroup_stats/", stats("/get_autogroup_stats/", "id"), 401,
        (200, 403), (200, 403), (200, 200)),
    Row("POST /sql", sql_call, 401, (403, 403), (403, 403), (200, 200)),
    Row("POST /admin/keys", create_key, 401, (403, 403), (201, 403), (201, 201)),
    Row("GET /admin/keys", get("/admin/keys?tenant={tenant}"), 401,
        (403, 403), (200, 403), (200, 200)),
    Row("DELETE /admin/keys/{key_id}", revoke_key, 401, (403, 403), (200, 404), (200, 200)),
    Row("GET /v2/metrics/custom/timeseries",
        get("/v2/metrics/custom/timeseries?name=m&tenant={tenant}"), 401,
        (200, 403), (200, 403), (200, 200)),
    Row("GET /v2/metrics/custom/series", get("/v2/metrics/custom/series?tenant={tenant}"), 401,
        (200, 403), (200, 403), (200, 200)),
    Row("GET /v2/metrics/queues", coopr_get("/v2/metrics/queues"), 401,
        (403, 403), (200, 403), (200, 403)),
    Row("GET /v2/metrics/nodes/usage", coopr_get("/v2/metrics/nodes/usage"), 401,
        (403, 403), (200, 403), (200, 403)),
    Row("GET /v2/metrics/nodes/usage?tenant", get("/v2/metrics/nodes/usage?tenant={tenant}"),
        401, (403, 403), (405, 405), (200, 200)),
    Row("GET /v2/endpoints/{endpointId}/metrics", metrics_get("/v2/endpoints/{ep}/metrics"),
        401, (200, 403), (200, 403), (200, 200)),
    # 200 for every key: endpoints the key may not read are listed in `errors` (batch_outcome)
    Row("POST /v2/endpoints/metrics/batch", batch_metrics, 401,
        (200, 200), (200, 200), (200, 200), batch_outcome),
    Row("GET /v2/endpoints/{endpointId}/pricing", metrics_get("/v2/endpoints/{ep}/pricing"),
        401, (200, 403), (200, 403), (200, 200)),
    Row("PUT /v2/endpoints/{endpointId}/pricing", put_pricing, 401,
        (403, 403), (200, 403), (200, 200)),
    # the dashboard: public pages and assets; its JSON reads list the caller's own tenant
    Row("GET /", get("/"), 307, (307, 307), (307, 307), (307, 307)),
    Row("GET /ui", get("/ui"), 200, (200, 200), (200, 200), (200, 200)),
    Row("GET /ui/", get("/ui/"), 200, (200, 200), (200, 200), (200, 200)),
    Row("GET /ui/assets/{relative:path}", get("/ui/assets/core.js"), 200, (200, 200),
        (200, 200), (200, 200)),
    Row("GET /ui/api/session", get("/ui/api/session"), 401, (200, 200), (200, 200),
        (200, 200)),
    Row("GET /ui/api/endpoints", get("/ui/api/endpoints"), 401, (200, 200), (200, 200),
        (200, 200), lambda who, t, r: own_rows(who, r, "endpoints")),
    Row("GET /ui/api/endpoints/{endpointId}/workers",
        metrics_get("/ui/api/endpoints/{ep}/workers"), 401, (200, 403), (200, 403), (200, 200)),
    Row("GET /ui/api/endpoints/{endpointId}/cold-starts",
        metrics_get("/ui/api/endpoints/{ep}/cold-starts?timeframe=1h"), 401, (200, 403),
        (200, 403), (200, 200)),
    Row("GET /ui/api/tasks", get("/ui/api/tasks"), 401, (200, 200), (200, 200), (200, 200),
        lambda who, t, r: own_rows(who, r, "tasks")),
    Row("GET /ui/api/dead-letters", get("/ui/api/dead-letters"), 401, (403, 403), (403, 403),
        (200, 200)),
    *event_rows(),
    *clearml_rows(),
    # a vast.ai worker's reports: public key for anyone; reports need an ingest-capable key
    # (reader 403); the ingest role itself is covered by tests/integration/vast_worker
    Row("GET /vast/{endpoint_id}/pubkey/", get("/vast/7701/pubkey/"), 200, (200, 200),
        (200, 200), (200, 200)),
    Row("GET /vast/{endpoint_id}/{autogroup_id}/pubkey/", get("/vast/7701/77010/pubkey/"), 200,
        (200, 200), (200, 200), (200, 200)),
    *(Row(f"POST /vast/{{endpoint_id}}{ag}/{name}/",
          vast_report(f"/vast/{{ep}}{ag.replace('autogroup_id', 'ag')}/{name}/", body), 401,
          (403, 403), (400, 400), (400, 400))
      for ag in ("", "/{autogroup_id}")
      for name, body in (("worker_status", {"id": "not-a-worker-id"}),
                         ("delete_requests", {"worker_id": 1, "requests": "none"}))),
]

#: Routes served by FastAPI itself (documentation), outside the role model.
UNGUARDED = {"GET /openapi.json", "GET /docs", "GET /docs/oauth2-redirect", "GET /redoc",
             "HEAD /openapi.json", "HEAD /docs", "HEAD /docs/oauth2-redirect", "HEAD /redoc"}


async def _stack(stack_factory: Any) -> tuple[Any, dict[str, str]]:
    # the endpoint metrics rows make 4 calls per key; keep the per-key limit out of the way
    stack = await stack_factory(metrics_rate_limit=10_000)
    s = stack.settings
    pools = {t: [f"rm-del-{t}-{i}" for i in range(DELETE_POOL)] for t in ENDPOINT}
    async with Producer(s.kafka_bootstrap, s.topics) as p:
        for tenant, ep in ENDPOINT.items():
            await p.send("requests", {"v": 1, "type": "request", "ts": time.time(),
                                      "tenant": tenant, "endpoint_id": ep, "autogroup_id": ep,
                                      "status": 200})
            task = TASK[tenant]
            events = [scalar(task, 1, 0.5), log(task, 2, f"hello {tenant}"),
                      plot(task, "roc", "a", 3), image(task, "img", "v", 4),
                      log(ADD_TASK[tenant], 0, "seed")]
            events += [log(t, 0, "to delete") for t in pools[tenant]]
            for e in events:
                await p.send("task-events", {**e, "tenant": tenant})
    await stack.wait_for(lambda: stack.rows("SELECT count() FROM {db}.autogroups FINAL"),
                         [(2,)])
    await wait_count(stack, "task_metric_events", 2 * 3)
    await wait_count(stack, "task_log_events", 2 * (2 + DELETE_POOL))
    # owner kinds: the task (metrics, blobs, logs), the add task and each delete task (logs)
    await wait_count(stack, "task_owners", 2 * (3 + 1 + DELETE_POOL))
    stack.role_matrix = {"delete": pools,
                         "superadmin": await stack.key("ops", "superadmin"),
                         "clearml": {t: await _clearml_entities(stack, t) for t in ENDPOINT}}
    return stack, {role: await stack.key(OWN, role) for role in ROLES}


async def _clearml_entities(stack: Any, tenant: str) -> dict[str, str]:
    """A project and a task of `tenant`, created through the API."""
    auth = bearer(await stack.key(tenant, "admin"))
    r = await stack.http.post("/projects.create", json={"name": f"rm-{tenant}"}, headers=auth)
    assert r.status_code == 200, r.text
    project = r.json()["data"]["id"]
    r = await stack.http.post("/tasks.create", json={"name": "rm", "type": "training",
                                                     "project": project}, headers=auth)
    assert r.status_code == 200, r.text
    return {"project": project, "task": r.json()["data"]["id"]}


async def test_role_matrix(stack_factory):
    stack, keys = await _stack(stack_factory)
    failures = []
    checked = 0
    for row in ROWS:
        cases: list[tuple[str, str | None, str, int]] = [("anon", None, OWN, row.anon)]
        for role in ROLES:
            own, other = getattr(row, role)
            cases += [(role, keys[role], OWN, own), (role, keys[role], OTHER, other)]
        for who, key, tenant, expected in cases:
            req = await row.call(stack, key, tenant)
            r = await stack.http.request(req.method, req.path, json=req.json,
                                         content=req.content, headers=req.headers)
            checked += 1
            if r.status_code != expected:
                failures.append(f"{row.route} as {who} on {tenant}: {r.status_code} "
                                f"(expected {expected}) {r.text[:150]}")
            problem = row.check(who, tenant, r) if row.check else None
            if problem:
                failures.append(f"{row.route} as {who} on {tenant}: {problem}")
            if r.status_code >= 400:
                body = r.json()
                if not (isinstance(body.get("error"), str) and body.get("message")):
                    failures.append(f"{row.route} as {who}: error body {body!r}")
    assert not failures, "\n".join(failures)
    assert checked == len(ROWS) * 7


async def test_every_route_has_a_row(stack_factory):
    """Every route has a row; the routes of one ClearML call (every method, with and without
    the version prefix) share one endpoint, and a row for one of them covers the others."""
    stack = await stack_factory()
    declared: dict[str, Any] = {}
    for route in stack.rt.api_app.routes:
        for method in getattr(route, "methods", None) or ():
            declared[f"{method} {route.path}"] = getattr(route, "endpoint", None)
    covered = {row.route.split("?")[0] for row in ROWS}
    covered_endpoints = {declared.get(r) for r in covered} - {None}
    missing = sorted(r for r, endpoint in declared.items()
                     if r not in covered and r not in UNGUARDED
                     and not (r.split(" ", 1)[1].split("/")[-1].count(".") == 1
                              and endpoint in covered_endpoints))
    assert not missing, f"routes without a role-matrix row: {missing}"
