"""Plots and debug images of the ClearML events API: latest iterations per metric/variant
with signed scroll ids, debug image navigation (get/next_debug_image_sample)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from query_api.clearml import calls, media_store
from query_api.clearml import task_events_store as task_events_db
from query_api.clearml.calls import TASK_DOC, Call, action, doc, get_bool, get_str_list, task_param
from query_api.clearml.latest import next_iterations
from query_api.clearml.media_store import IMAGE
from query_api.clearml.task_events_store import event_from_row
from query_api.errors import ApiError, bad_param
from query_api.params import get_int, get_str

__all__ = ["router"]

router = APIRouter()

_ITERS = {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 1}
_BATCH = {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 500}


async def _paged(call: Call, tasks: list[str], etype: str, action_name: str
                 ) -> tuple[list[dict[str, Any]], int, str]:
    iters = get_int(call.body, "iters", default=1, lo=1, hi=10_000)
    batch_size = get_int(call.body, "batch_size", default=500, lo=1, hi=10_000)
    assert iters is not None and batch_size is not None
    store = call.ctx.store
    tenant = await task_events_db.resolve_tenant(store, call.key, tasks)
    expect = {"a": action_name, "t": tenant, "k": tasks, "i": iters}
    state = calls.scroll_state(call, expect)
    events, total, pos = await media_store.latest_iters(store, tenant, tasks, etype, iters=iters,
                                            after=state.get("p") if state else None,
                                            limit=batch_size)
    return events, total, calls.scroll_codec(call.ctx).encode({**expect, "p": pos})


@action(router, "get_task_plots", summary="Plots of the latest iterations of a task",
        body_doc=doc(["task"], task=TASK_DOC, iters=_ITERS, scroll_id={"type": "string"},
                     batch_size=_BATCH))
async def get_task_plots(call: Call) -> dict[str, Any]:
    task = task_param(call)
    plots, total, scroll_id = await _paged(call, [task], "plot", "plots")
    return {"plots": plots, "returned": len(plots), "total": total, "scroll_id": scroll_id}


@action(router, "get_multi_task_plots",
        summary="Plots of several tasks: metric → variant → task → iteration",
        body_doc=doc(["tasks"], tasks={"type": "array", "items": TASK_DOC},
                     iters=_ITERS, scroll_id={"type": "string"}))
async def get_multi_task_plots(call: Call) -> dict[str, Any]:
    tasks = get_str_list(call.body, "tasks", max_items=100)
    plots, total, scroll_id = await _paged(call, tasks, "plot", "multi_plots")
    tree: dict[str, Any] = {}
    for e in plots:
        node = tree.setdefault(e["metric"], {}).setdefault(e["variant"], {}) \
            .setdefault(e["task"], {}).setdefault(str(e["iter"]), {"name": e["task"],
                                                                   "plots": []})
        node["plots"].append(e)
    return {"plots": tree, "returned": len(plots), "total": total, "scroll_id": scroll_id}


@action(router, "debug_images",
        summary="Debug images: 2.1 (task) or 2.7 (metrics, navigate_earlier) behaviour",
        body_doc=doc([], task=TASK_DOC, metrics={"type": "array", "items": {"type": "object"}},
                     iters={**_ITERS, "description": "at most 1000 with metrics (2.7)"},
                     navigate_earlier={"type": "boolean"},
                     refresh={"type": "boolean"}, scroll_id={"type": "string"}))
async def debug_images(call: Call) -> dict[str, Any]:
    v27 = call.version >= (2, 7) if call.version is not None else "metrics" in call.body
    if not v27:
        task = task_param(call)
        images, total, scroll_id = await _paged(call, [task], IMAGE, "images")
        return {"task": task, "images": images, "returned": len(images), "total": total,
                "scroll_id": scroll_id}
    return await _debug_images_27(call)


async def _debug_images_27(call: Call) -> dict[str, Any]:
    b = call.body
    raw = b.get("metrics")
    if (not isinstance(raw, list) or not raw or len(raw) > 100
            or not all(isinstance(m, dict) and isinstance(m.get("task"), str)
                       and isinstance(m.get("metric", ""), str) for m in raw)):
        raise bad_param("metrics", raw, "metrics must be a list of 1 to 100 objects "
                        "{task, metric (optional)}")
    return await next_iterations(call, raw, IMAGE, "images27")


async def _sample_result(call: Call, tenant: str, task: str, row: Any, metric: str,
                         variant: str) -> dict[str, Any]:
    lo, hi, n = await media_store.image_range(call.ctx.store, tenant, task, metric, variant)
    state = {"a": "image_sample", "t": tenant, "k": task, "m": metric, "v": variant,
             "i": int(row[3]) if row is not None else None}
    return {"scroll_id": calls.scroll_codec(call.ctx).encode(state),
            "event": event_from_row(row) if row is not None else None,
            "min_iteration": int(lo) if n else None, "max_iteration": int(hi) if n else None}


@action(router, "get_debug_image_sample",
        summary="The debug image of a metric/variant at an iteration (default: the latest)",
        body_doc=doc(["task", "metric", "variant"], task=TASK_DOC, metric={"type": "string"},
                     variant={"type": "string"},
                     iteration={"type": "integer", "minimum": calls.INT64_MIN,
                                "maximum": calls.INT64_MAX},
                     refresh={"type": "boolean"}, scroll_id={"type": "string"}))
async def get_debug_image_sample(call: Call) -> dict[str, Any]:
    b = call.body
    task = get_str(b, "task", required=True, max_len=128)
    metric = get_str(b, "metric", required=True, max_len=1024)
    variant = get_str(b, "variant", required=True, max_len=1024)
    iteration = get_int(b, "iteration", lo=calls.INT64_MIN, hi=calls.INT64_MAX)
    get_bool(b, "refresh", False)
    assert task is not None and metric is not None and variant is not None
    store = call.ctx.store
    tenant = await task_events_db.resolve_tenant(store, call.key, [task])
    calls.scroll_state(call, {"a": "image_sample", "t": tenant, "k": task})
    it = calls.INT64_MAX if iteration is None else iteration
    row = await media_store.image_at(store, tenant, task, metric, variant, it)
    return await _sample_result(call, tenant, task, row, metric, variant)


@action(router, "next_debug_image_sample",
        summary="The next (or previous) variant's image, then the next iteration's",
        body_doc=doc(["task", "scroll_id"], task=TASK_DOC, scroll_id={"type": "string"},
                     navigate_earlier={"type": "boolean"}))
async def next_debug_image_sample(call: Call) -> dict[str, Any]:
    b = call.body
    task = get_str(b, "task", required=True, max_len=128)
    assert task is not None
    if not b.get("scroll_id"):
        raise bad_param("scroll_id", None, "scroll_id is required (from get_debug_image_sample)")
    earlier = get_bool(b, "navigate_earlier", False)
    store = call.ctx.store
    tenant = await task_events_db.resolve_tenant(store, call.key, [task])
    state = calls.scroll_state(call, {"a": "image_sample", "t": tenant, "k": task})
    assert state is not None
    metric, variant, it = state["m"], state["v"], state["i"]
    if it is None:
        raise ApiError(400, "INVALID_SCROLL_ID", "scroll_id: no current image to move from; "
                       "call get_debug_image_sample again", {"parameter": "scroll_id"})
    row = await media_store.image_step(store, tenant, task, metric, variant, it,
                                       earlier=earlier)
    if row is None:
        row = await media_store.image_at(store, tenant, task, metric, variant, it, exact=True)
        return await _sample_result(call, tenant, task, row, metric, variant)
    return await _sample_result(call, tenant, task, row, metric, row[5])
