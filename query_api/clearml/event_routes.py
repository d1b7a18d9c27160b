"""`POST /events.<action>` (ClearML events API): ingest, event and log reads, log download,
delete. Metric reads live in `routes_event_metrics`, plots and debug images in
`routes_event_media`; both are mounted on this router.

Writes (add, add_batch, delete_for_task) need an admin key; reads a reader key. A key only ever
sees its tenant's events (`task_events_db.resolve_tenant`).

`total` of a scrolled read is counted when the scroll starts (the call without scroll_id) and
carried in the scroll id: counting a million events on every page would cost more than the page.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from fastapi import APIRouter

from pipeline.ingest.admission import Admission
from pipeline.ingest.rows.task_events import EVENT_TYPES, request_log_id
from query_api import ingest
from query_api.clearml import event_media_routes as routes_event_media
from query_api.clearml import event_metric_routes as routes_event_metrics
from query_api.clearml import routes as task_routes
from query_api.clearml import task_events_store as task_events_db
from query_api.clearml import task_log
from query_api.clearml.calls import (
    TASK_DOC,
    Call,
    action,
    doc,
    get_bool,
    scroll_codec,
    scroll_state,
    task_param,
)
from query_api.errors import ApiError, bad_param
from query_api.params import get_choice, get_int, get_number, get_str, json_object
from query_api.query_params import MAX_UNIX_S

__all__ = ["router"]

router = APIRouter()
router.include_router(routes_event_metrics.router)
router.include_router(routes_event_media.router)

MAX_BATCH_BYTES = 64 * 1024 * 1024
MAX_BATCH_LINES = 100_000
MAX_ERRORS_LISTED = 100
MAX_UNIX_MS = MAX_UNIX_S * 1000  # from_timestamp is in ms
_TYPES = tuple(EVENT_TYPES)


async def _read_body(call: Call, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in call.request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "PAYLOAD_TOO_LARGE", f"request body exceeds {limit} bytes",
                           {"limit": limit})
        chunks.append(chunk)
    return b"".join(chunks)


async def _check_task_owners(call: Call, tasks: set[str]) -> None:
    """A task belongs to the tenant that first reported it: events for a task another tenant
    owns are refused whole (403), so no tenant can add to, or shadow, another's task. Tasks
    nobody reported yet are free to claim."""
    foreign = await task_events_db.foreign_tasks(call.ctx.store, call.key.tenant, tasks)
    if foreign:
        raise ApiError(403, "INSUFFICIENT_PERMISSIONS",
                       f"task {foreign[0]!r} belongs to another tenant",
                       {"parameter": "task", "value": foreign[:20],
                        "requiredPermission": "tenant:own",
                        "currentPermissions": [call.key.role]})


async def _ingest(call: Call, items: list[tuple[int, Any]], body: bytes) -> dict[str, Any]:
    """Judge the events as the worker will (`pipeline.ingest.admission`), publish the accepted ones
    with
    the ingest deadline (`query_api.ingest`) and report the refused ones with their reason.

    Log events without an `id` get one derived from (tenant, body, line): a retried request
    stores its log lines once (see `query_api.ingest` on what a 503 means)."""
    ctx = call.ctx
    ingest.producer_of(ctx)  # 503 before any work when this process has no broker
    events: list[Any] = []
    for _, item in items:
        if isinstance(item, dict):
            item = {k: v for k, v in item.items() if k != "api_key"}
            item["tenant"] = call.key.tenant
        events.append(item)
    verdict = Admission.of(ctx.settings, "task-events", ctx.clock()).judge(events)
    nerr = len(verdict.refused)
    errors = {str(items[i][0]): reason
              for i, reason in sorted(verdict.refused.items())[:MAX_ERRORS_LISTED]}
    if not verdict.accepted:
        raise ApiError(400, "EVENTS_NOT_ADDED", f"no event was added: {nerr} invalid",
                       {"parameter": "body", "errors_info": errors})
    digest = hashlib.blake2b(call.key.tenant.encode() + b"\0" + body, digest_size=12).hexdigest()
    valid: list[dict[str, Any]] = []
    for i in verdict.accepted:
        event = events[i]
        if event["type"] == "log" and "id" not in event:
            event["id"] = request_log_id(digest, items[i][0])
        valid.append(event)
    await _check_task_owners(call, {str(e.get("task")) for e in valid})
    await ingest.publish(ctx, "task-events", valid)
    await task_routes.raise_last_iterations(call, valid)
    return {"added": len(valid), "errors": nerr, "errors_info": errors}


@action(router, "add", role="admin", raw_body=True,
        summary="Add one task event (published to Kafka topic task-events)",
        body_doc=doc(["task", "type"], task=TASK_DOC,
                     type={"type": "string", "enum": list(_TYPES)}))
async def add(call: Call) -> dict[str, Any]:
    raw = await _read_body(call, MAX_BATCH_BYTES)
    item = json_object(raw, "body must be one event (a JSON object)")
    try:
        return await _ingest(call, [(1, item)], raw)
    except ApiError as exc:
        if exc.code != "EVENTS_NOT_ADDED":
            raise
        reason = exc.details["errors_info"].get("1", "invalid event")
        raise bad_param(reason.split(":")[0], None, f"invalid event: {reason}",
                        list(_TYPES) if reason.startswith("type") else None) from None


@action(router, "add_batch", role="admin", raw_body=True,
        summary="Add task events, one JSON object per line (application/json-lines)",
        body_doc={"type": "string", "description": "JSON lines, one event each"})
async def add_batch(call: Call) -> dict[str, Any]:
    raw = await _read_body(call, MAX_BATCH_BYTES)
    items: list[tuple[int, Any]] = []
    bad: dict[str, str] = {}
    for n, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        if len(items) + len(bad) >= MAX_BATCH_LINES:
            raise ApiError(413, "PAYLOAD_TOO_LARGE",
                           f"a batch holds at most {MAX_BATCH_LINES} events",
                           {"limit": MAX_BATCH_LINES})
        try:
            items.append((n, orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            bad[str(n)] = f"invalid JSON: {exc}"
    if not items and not bad:
        raise bad_param("body", None, "the batch is empty: send one JSON event per line")
    if not items:
        raise ApiError(400, "EVENTS_NOT_ADDED", f"no event was added: {len(bad)} invalid",
                       {"parameter": "body", "errors_info": dict(list(bad.items())[:100])})
    try:
        result = await _ingest(call, items, raw)
    except ApiError as exc:
        if exc.code == "EVENTS_NOT_ADDED":
            merged = {**bad, **exc.details["errors_info"]}
            exc.details["errors_info"] = dict(sorted(merged.items(), key=lambda kv: int(kv[0]))
                                              [:MAX_ERRORS_LISTED])
            exc.message = f"no event was added: {len(bad) + len(items)} invalid"
        raise
    merged = {**bad, **result["errors_info"]}
    result["errors"] += len(bad)
    result["errors_info"] = dict(sorted(merged.items(), key=lambda kv: int(kv[0]))
                                 [:MAX_ERRORS_LISTED])
    return result


@action(router, "get_task_events", summary="Scroll through a task's events by timestamp",
        body_doc=doc(["task"], task=TASK_DOC, order={"type": "string", "enum": ["asc", "desc"]},
                     scroll_id={"type": "string"},
                     batch_size={"type": "integer", "minimum": 1, "maximum": 10_000},
                     event_type={"type": "string", "enum": list(_TYPES)}))
async def get_task_events(call: Call) -> dict[str, Any]:
    b = call.body
    task = get_str(b, "task", required=True, max_len=128)
    assert task is not None
    batch_size = get_int(b, "batch_size", default=500, lo=1, hi=10_000)
    assert batch_size is not None
    tenant, kinds = await task_events_db.resolve_owner(call.ctx.store, call.key, [task])
    state = scroll_state(call, {"a": "events", "t": tenant, "k": task})
    order = get_choice(b, "order", ("asc", "desc"))
    event_type = get_choice(b, "event_type", _TYPES)
    if state is not None:
        if (order is not None and order != state["o"]) or \
                (event_type is not None and event_type != (state["e"] or None)):
            raise ApiError(400, "INVALID_SCROLL_ID", "scroll_id: belongs to another query "
                           "(order or event_type differs); start again without scroll_id",
                           {"parameter": "scroll_id", "reason": "foreign"})
        order, event_type = state["o"], state["e"] or None
    order = order or "asc"
    after = (state["ts"], state["id"]) if state and "ts" in state else None
    store = call.ctx.store
    events = await task_events_db.events_page(store, tenant, task, order=order,
                                              event_type=event_type, after=after,
                                              limit=batch_size,
                                              window_ms=state.get("w") if state else None,
                                              kinds=kinds)
    total = state["n"] if state and "n" in state else \
        await task_events_db.events_total(store, tenant, task, event_type)
    pos = events.last or after
    cursor: dict[str, Any] = {"a": "events", "t": tenant, "k": task, "o": order,
                              "e": event_type or "", "n": total}
    if pos is not None:
        cursor["ts"], cursor["id"] = pos
    if events.count == batch_size:  # the next page likely spans about as much time
        cursor["w"] = events.span_ms + events.span_ms // 2 + 1
    return {"events": events.json(), "returned": events.count, "total": total,
            "scroll_id": scroll_codec(call.ctx).encode(cursor)}


@action(router, "get_task_log", summary="Page through a task's log (versions 1.7 and 2.9)",
        body_doc=doc(["task"], task=TASK_DOC,
                     batch_size={"type": "integer", "minimum": 1, "maximum": 10_000},
                     navigate_earlier={"type": "boolean"},
                     from_timestamp={"type": "number", "minimum": 0, "maximum": MAX_UNIX_MS},
                     order={"type": "string", "enum": ["asc", "desc"]},
                     **{"from": {"type": "string", "enum": ["head", "tail"]}},
                     scroll_id={"type": "string"}))
async def get_task_log(call: Call) -> dict[str, Any]:
    b = call.body
    task = get_str(b, "task", required=True, max_len=128)
    assert task is not None
    legacy = call.version < (2, 9) if call.version is not None else "from" in b
    batch_size = get_int(b, "batch_size", default=500 if legacy else 5000, lo=1, hi=10_000)
    assert batch_size is not None
    order = get_choice(b, "order", ("asc", "desc"))
    store = call.ctx.store
    tenant, kinds = await task_events_db.resolve_owner(store, call.key, [task])
    state = scroll_state(call, {"a": "log", "t": tenant, "k": task})
    after = (state["ts"], state["id"]) if state and "ts" in state else None
    from_ts: int | None = None
    if legacy:
        start = get_choice(b, "from", ("head", "tail"), default="head")
        direction = state["d"] if state else ("asc" if start == "head" else "desc")
        out_order = order or "asc"
    else:
        earlier = get_bool(b, "navigate_earlier", True)
        direction = state["d"] if state else ("desc" if earlier else "asc")
        fts = get_number(b, "from_timestamp", lo=0, hi=MAX_UNIX_MS)
        from_ts = None if fts is None else int(fts)
        out_order = order or direction
    events = await task_log.page(store, tenant, task, direction=direction, after=after,
                                 from_ts=from_ts, limit=batch_size, kinds=kinds)
    total = state["n"] if state and "n" in state else \
        await task_events_db.events_total(store, tenant, task, "log")
    pos = events.last or after
    cursor: dict[str, Any] = {"a": "log", "t": tenant, "k": task, "d": direction,
                              "n": total}
    if pos is not None:
        cursor["ts"], cursor["id"] = pos
    events_json = events.json(reverse=out_order != direction)
    return {"events": events_json, "returned": events.count, "total": total,
            "scroll_id": scroll_codec(call.ctx).encode(cursor)}


@action(router, "download_task_log", summary="Download a task's log as an attachment",
        body_doc=doc(["task"], task=TASK_DOC,
                     line_type={"type": "string", "enum": ["json", "text"]},
                     line_format={"type": "string",
                                  "default": "{asctime} {worker} {level} {msg}"}))
async def download_task_log(call: Call) -> Any:
    b = call.body
    task = get_str(b, "task", required=True, max_len=128)
    assert task is not None
    line_type = get_choice(b, "line_type", ("json", "text"), default="json")
    line_format = get_str(b, "line_format", default=task_log.DEFAULT_FORMAT, max_len=4096)
    assert line_format is not None
    template = None if line_type == "json" else task_log.compile_format(line_format)
    tenant = await task_events_db.resolve_tenant(call.ctx.store, call.key, [task])
    return task_log.download(call.ctx.store, tenant, task, template)


@action(router, "delete_for_task", role="admin", summary="Delete all events of a task",
        body_doc=doc(["task"], task=TASK_DOC, allow_locked={"type": "boolean", "default": False}))
async def delete_for_task(call: Call) -> dict[str, Any]:
    task = task_param(call)
    get_bool(call.body, "allow_locked", False)
    tenant = await task_events_db.resolve_tenant(call.ctx.store, call.key, [task])
    return {"deleted": await task_events_db.delete_task(call.ctx.store, tenant, task)}
