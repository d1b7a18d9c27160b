"""events.* actions the ClearML SDK defines beyond the original set
(`query_api.clearml.event_routes`
and its sub-routers): clear_scroll, clear_task_log, delete_for_model, plots, get_plot_sample,
next_plot_sample, get_task_single_value_metrics, scalar_metrics_iter_raw. HTTP only: SQL in
`events_store`, the call convention in `query_api.clearml.calls`; shapes as clearml-server's.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from query_api.clearml import calls, events_store, store
from query_api.clearml import task_events_store as task_events_db
from query_api.clearml.calls import TASK_DOC, Call, action, doc, get_bool, get_str_list, task_param
from query_api.clearml.latest import next_iterations
from query_api.clearml.task_events_store import event_from_row
from query_api.errors import ApiError, bad_param
from query_api.params import get_choice, get_int, get_number, get_str

__all__ = ["router"]

router = APIRouter()

_KEYS = ("iter", "timestamp", "iso_time")
MAX_RAW_BATCH = 200_000


@action(router, "clear_scroll", summary="Release a scroll (a no-op: Vitals scroll ids are "
        "stateless)", body_doc=doc([], scroll_id={"type": "string"}))
async def clear_scroll(call: Call) -> dict[str, Any]:
    get_str(call.body, "scroll_id", max_len=1 << 16)
    return {}


@action(router, "clear_task_log", role="admin",
        summary="Delete a task's log lines (those older than threshold_sec when given)",
        body_doc=doc(["task"], task=TASK_DOC, threshold_sec={"type": "integer", "minimum": 0},
                     allow_locked={"type": "boolean"}))
async def clear_task_log(call: Call) -> dict[str, Any]:
    task = task_param(call)
    get_bool(call.body, "allow_locked", False)
    threshold = get_int(call.body, "threshold_sec", lo=0, hi=100 * 365 * 86400)
    tenant = await task_events_db.resolve_tenant(call.ctx.store, call.key, [task])
    before = None if threshold is None else int((call.ctx.clock() - threshold) * 1000)
    return {"deleted": await events_store.clear_log(call.ctx.store, tenant, task, before)}


@action(router, "delete_for_model", role="admin",
        summary="Delete all events reported for a model (events whose task is the model id)",
        body_doc=doc(["model"], model={"type": "string"}, allow_locked={"type": "boolean"}))
async def delete_for_model(call: Call) -> dict[str, Any]:
    model = task_param(call, "model")
    get_bool(call.body, "allow_locked", False)
    tenant = await task_events_db.resolve_tenant(call.ctx.store, call.key, [model])
    return {"deleted": await task_events_db.delete_task(call.ctx.store, tenant, model)}


def _metrics_param(call: Call) -> list[dict[str, Any]]:
    raw = call.body.get("metrics")
    if (not isinstance(raw, list) or not raw or len(raw) > 100
            or not all(isinstance(m, dict) and isinstance(m.get("task"), str)
                       and isinstance(m.get("metric") or "", str) for m in raw)):
        raise bad_param("metrics", raw, "metrics must be a list of 1 to 100 objects "
                        "{task, metric (optional)}")
    return raw


@action(router, "plots", summary="Plots of the next iterations per task and metric, "
        "navigating earlier or later (2.7 behaviour of debug_images, for plots)",
        body_doc=doc(["metrics"], metrics={"type": "array", "items": {"type": "object"}},
                     iters={"type": "integer", "minimum": 1, "maximum": 1000},
                     navigate_earlier={"type": "boolean"}, refresh={"type": "boolean"},
                     scroll_id={"type": "string"}))
async def plots(call: Call) -> dict[str, Any]:
    raw = _metrics_param(call)
    return await next_iterations(call, raw, events_store.PLOT, "plots27")


async def _plot_sample(call: Call, tenant: str, task: str, metric: str,
                       iteration: int | None) -> dict[str, Any]:
    db = call.ctx.store
    rng = await events_store.metric_range(db, tenant, task, metric)
    events = [] if iteration is None else [
        event_from_row(r) for r in await events_store.plots_at(db, tenant, task, metric,
                                                               iteration)]
    state = {"a": "plot_sample", "t": tenant, "k": task, "m": metric, "i": iteration}
    return {"scroll_id": calls.scroll_codec(call.ctx).encode(state), "events": events,
            "min_iteration": rng[0] if rng else None, "max_iteration": rng[1] if rng else None}


@action(router, "get_plot_sample",
        summary="Every variant's plot of a metric at an iteration (default: the latest)",
        body_doc=doc(["task", "metric"], task=TASK_DOC, metric={"type": "string"},
                     iteration={"type": "integer"}, refresh={"type": "boolean"},
                     scroll_id={"type": "string"}))
async def get_plot_sample(call: Call) -> dict[str, Any]:
    task = task_param(call)
    metric = get_str(call.body, "metric", required=True, max_len=1024)
    assert metric is not None
    iteration = get_int(call.body, "iteration", lo=calls.INT64_MIN, hi=calls.INT64_MAX)
    get_bool(call.body, "refresh", False)
    tenant = await task_events_db.resolve_tenant(call.ctx.store, call.key, [task])
    calls.scroll_state(call, {"a": "plot_sample", "t": tenant, "k": task})
    found = await events_store.latest_iteration(
        call.ctx.store, tenant, task, metric, calls.INT64_MAX if iteration is None else iteration)
    return await _plot_sample(call, tenant, task, metric, found)


@action(router, "next_plot_sample",
        summary="The next (or previous) metric's plots at the iteration, then the next "
        "iteration's; with next_iteration, the same metric's next iteration",
        body_doc=doc(["task", "scroll_id"], task=TASK_DOC, scroll_id={"type": "string"},
                     navigate_earlier={"type": "boolean"}, next_iteration={"type": "boolean"}))
async def next_plot_sample(call: Call) -> dict[str, Any]:
    task = task_param(call)
    if not call.body.get("scroll_id"):
        raise bad_param("scroll_id", None, "scroll_id is required (from get_plot_sample)")
    earlier = get_bool(call.body, "navigate_earlier", False)
    same_metric = get_bool(call.body, "next_iteration", False)
    tenant = await task_events_db.resolve_tenant(call.ctx.store, call.key, [task])
    state = calls.scroll_state(call, {"a": "plot_sample", "t": tenant, "k": task})
    assert state is not None
    if state["i"] is None:
        raise ApiError(400, "INVALID_SCROLL_ID", "scroll_id: no current plot to move from; "
                       "call get_plot_sample again", {"parameter": "scroll_id"})
    step = await events_store.step_from(call.ctx.store, tenant, task, state["m"], state["i"],
                                        earlier=earlier, same_metric=same_metric)
    if step is None:  # at the end: the current sample again
        return await _plot_sample(call, tenant, task, state["m"], state["i"])
    return await _plot_sample(call, tenant, task, step[0], step[1])


def _metric_variants(call: Call) -> dict[str, list[str]] | None:
    raw = call.body.get("metrics")
    if raw is None:
        return None
    if (not isinstance(raw, list) or len(raw) > 1000 or not all(
            isinstance(m, dict) and isinstance(m.get("metric"), str)
            and isinstance(m.get("variants") or [], list) for m in raw)):
        raise bad_param("metrics", raw, "metrics must be a list of {metric, variants}")
    return {m["metric"]: [str(v) for v in m.get("variants") or []] for m in raw}


@action(router, "get_task_single_value_metrics",
        summary="Single-value scalars of tasks: [{task, task_name, values: [{metric, variant, "
        "value, timestamp}]}]",
        body_doc=doc(["tasks"], tasks={"type": "array", "items": TASK_DOC},
                     metrics={"type": "array", "items": {"type": "object"}}))
async def get_task_single_value_metrics(call: Call) -> dict[str, Any]:
    tasks = get_str_list(call.body, "tasks", max_items=100)
    metrics = _metric_variants(call)
    db = call.ctx.store
    tenant = await task_events_db.resolve_tenant(db, call.key, tasks)
    names = await store.task_names(db, tenant, tasks)
    values: dict[str, list[dict[str, Any]]] = {}
    for task, metric, variant, value, ts in await events_store.single_values(
            db, tenant, tasks, metrics):
        values.setdefault(task, []).append(
            {"metric": metric, "variant": variant, "value": value, "timestamp": int(ts)})
    return {"tasks": [{"task": t, "task_name": names.get(t, t), "values": v}
                      for t, v in values.items()]}


@action(router, "scalar_metrics_iter_raw",
        summary="Every scalar of one metric, unsampled, paged: variants → {y, <key>}",
        body_doc=doc(["task", "metric"], task=TASK_DOC, metric={"type": "object"},
                     key={"type": "string", "enum": list(_KEYS)},
                     batch_size={"type": "integer", "minimum": 1, "maximum": MAX_RAW_BATCH},
                     count_total={"type": "boolean"}, scroll_id={"type": "string"}))
async def scalar_metrics_iter_raw(call: Call) -> dict[str, Any]:
    b = call.body
    task = task_param(call)
    spec = b.get("metric")
    if not isinstance(spec, dict) or not isinstance(spec.get("metric"), str) or \
            not isinstance(spec.get("variants") or [], list):
        raise bad_param("metric", spec, "metric must be {metric, variants (optional)}")
    metric, variants = spec["metric"], [str(v) for v in spec.get("variants") or []]
    key = get_choice(b, "key", _KEYS, default="iter")
    assert key is not None
    batch = get_number(b, "batch_size", lo=0, hi=MAX_RAW_BATCH)
    count_total = get_bool(b, "count_total", False)
    db = call.ctx.store
    tenant = await task_events_db.resolve_tenant(db, call.key, [task])
    expect = {"a": "scalar_raw", "t": tenant, "k": task, "m": metric, "v": variants,
              "x": key}
    state = calls.scroll_state(call, expect)
    limit = int(batch) if batch else (state["b"] if state else 10_000)
    total = state.get("n") if state else None
    if count_total and total is None:
        total = await events_store.scalar_count(db, tenant, task, metric, variants)
    rows = await events_store.raw_scalars(db, tenant, task, metric, variants, key,
                                          state.get("p") if state else None, limit)
    out: dict[str, dict[str, list[Any]]] = {}
    for x, variant, _, value in rows:
        series = out.setdefault(variant, {"y": [], key: []})
        series["y"].append(value)
        series[key].append(task_events_db.iso_ms(int(x)) if key == "iso_time" else int(x))
    pos = list(rows[-1][:3]) if rows else (state.get("p") if state else None)
    cursor = {**expect, "b": limit, "n": total, "p": pos}
    return {"variants": out, "returned": len(rows), "total": total,
            "scroll_id": calls.scroll_codec(call.ctx).encode(cursor)}
