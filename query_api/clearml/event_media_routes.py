"""Plots and debug images of the ClearML events API: latest iterations per metric/variant
with signed scroll ids, debug image navigation (get/next_debug_image_sample)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from query_api.clearml import media_store
from query_api.clearml import task_events_store as task_events_db
from query_api.clearml.calls import (
    Call,
    action,
    doc,
    get_bool,
    get_str_list,
    scroll_codec,
    scroll_state,
)
from query_api.clearml.media_store import IMAGE
from query_api.clearml.task_events_store import event_from_row
from query_api.errors import ApiError, bad_param
from query_api.params import get_int, get_str

__all__ = ["router"]

router = APIRouter()

_TASK = {"type": "string", "description": "Task ID"}
_ITERS = {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 1}
_BATCH = {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 500}
_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)


async def _paged(call: Call, tasks: list[str], etype: str, action_name: str
                 ) -> tuple[list[dict[str, Any]], int, str]:
    iters = get_int(call.body, "iters", default=1, lo=1, hi=10_000)
    batch_size = get_int(call.body, "batch_size", default=500, lo=1, hi=10_000)
    assert iters is not None and batch_size is not None
    store = call.ctx.store
    tenant = await task_events_db.resolve_tenant(store, call.key, tasks)
    expect = {"a": action_name, "t": tenant, "k": tasks, "i": iters}
    state = scroll_state(call, expect)
    events, total, pos = await media_store.latest_iters(store, tenant, tasks, etype, iters=iters,
                                            after=state.get("p") if state else None,
                                            limit=batch_size)
    return events, total, scroll_codec(call.ctx).encode({**expect, "p": pos})


@action(router, "get_task_plots", summary="Plots of the latest iterations of a task",
        body_doc=doc(["task"], task=_TASK, iters=_ITERS, scroll_id={"type": "string"},
                     batch_size=_BATCH))
async def get_task_plots(call: Call) -> dict[str, Any]:
    task = get_str(call.body, "task", required=True, max_len=128)
    assert task is not None
    plots, total, scroll_id = await _paged(call, [task], "plot", "plots")
    return {"plots": plots, "returned": len(plots), "total": total, "scroll_id": scroll_id}


@action(router, "get_multi_task_plots",
        summary="Plots of several tasks: metric → variant → task → iteration",
        body_doc=doc(["tasks"], tasks={"type": "array", "items": _TASK},
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
        body_doc=doc([], task=_TASK, metrics={"type": "array", "items": {"type": "object"}},
                     iters={**_ITERS, "description": "at most 1000 with metrics (2.7)"},
                     navigate_earlier={"type": "boolean"},
                     refresh={"type": "boolean"}, scroll_id={"type": "string"}))
async def debug_images(call: Call) -> dict[str, Any]:
    v27 = call.version >= (2, 7) if call.version is not None else "metrics" in call.body
    if not v27:
        task = get_str(call.body, "task", required=True, max_len=128)
        assert task is not None
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
    iters = get_int(b, "iters", default=1, lo=1, hi=1000)
    assert iters is not None
    earlier = get_bool(b, "navigate_earlier", True)
    refresh = get_bool(b, "refresh", False)
    store = call.ctx.store
    tasks = list(dict.fromkeys(m["task"] for m in raw))
    tenant = await task_events_db.resolve_tenant(store, call.key, tasks)
    known = set(await media_store.image_metrics(store, tenant, tasks))
    pairs: list[tuple[str, str]] = []
    for m in raw:
        if m.get("metric"):
            pairs.append((m["task"], m["metric"]))
        else:
            pairs.extend(p for p in sorted(known) if p[0] == m["task"])
    pairs = list(dict.fromkeys(pairs))[:100]
    state = scroll_state(call, {"a": "images27", "t": tenant, "e": earlier})
    positions: dict[str, int] = {} if state is None or refresh else dict(state["p"])
    names = [f"{t}\x1f{m}" for t, m in pairs]
    default = _INT64_MAX if earlier else _INT64_MIN
    bounds = [positions.get(n, default) for n in names]
    rows = await media_store.images_around(store, tenant, names, bounds, earlier=earlier,
                                           iters=iters, default=default)
    grouped: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = {p: {} for p in pairs}
    for r in rows:
        e = event_from_row(r)
        grouped[(e["task"], e["metric"])].setdefault(e["iter"], []).append(e)
    out = []
    for (task, metric), by_iter in grouped.items():
        if by_iter:
            positions[f"{task}\x1f{metric}"] = list(by_iter)[-1]
        out.append({"task": task, "metric": metric,
                    "iterations": [{"iter": i, "events": evs} for i, evs in by_iter.items()]})
    scroll_id = scroll_codec(call.ctx).encode(
        {"a": "images27", "t": tenant, "e": earlier, "p": positions})
    return {"metrics": out, "scroll_id": scroll_id}


async def _sample_result(call: Call, tenant: str, task: str, row: Any, metric: str,
                         variant: str) -> dict[str, Any]:
    lo, hi, n = await media_store.image_range(call.ctx.store, tenant, task, metric, variant)
    state = {"a": "image_sample", "t": tenant, "k": task, "m": metric, "v": variant,
             "i": int(row[3]) if row is not None else None}
    return {"scroll_id": scroll_codec(call.ctx).encode(state),
            "event": event_from_row(row) if row is not None else None,
            "min_iteration": int(lo) if n else None, "max_iteration": int(hi) if n else None}


@action(router, "get_debug_image_sample",
        summary="The debug image of a metric/variant at an iteration (default: the latest)",
        body_doc=doc(["task", "metric", "variant"], task=_TASK, metric={"type": "string"},
                     variant={"type": "string"},
                     iteration={"type": "integer", "minimum": _INT64_MIN, "maximum": _INT64_MAX},
                     refresh={"type": "boolean"}, scroll_id={"type": "string"}))
async def get_debug_image_sample(call: Call) -> dict[str, Any]:
    b = call.body
    task = get_str(b, "task", required=True, max_len=128)
    metric = get_str(b, "metric", required=True, max_len=1024)
    variant = get_str(b, "variant", required=True, max_len=1024)
    iteration = get_int(b, "iteration", lo=_INT64_MIN, hi=_INT64_MAX)
    get_bool(b, "refresh", False)
    assert task is not None and metric is not None and variant is not None
    store = call.ctx.store
    tenant = await task_events_db.resolve_tenant(store, call.key, [task])
    scroll_state(call, {"a": "image_sample", "t": tenant, "k": task})
    it = _INT64_MAX if iteration is None else iteration
    row = await media_store.image_at(store, tenant, task, metric, variant, it)
    return await _sample_result(call, tenant, task, row, metric, variant)


@action(router, "next_debug_image_sample",
        summary="The next (or previous) variant's image, then the next iteration's",
        body_doc=doc(["task", "scroll_id"], task=_TASK, scroll_id={"type": "string"},
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
    state = scroll_state(call, {"a": "image_sample", "t": tenant, "k": task})
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
