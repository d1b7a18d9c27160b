"""Metric reads of the ClearML events API: metric listings, scalar data, latest values, vector
and scalar histograms (downsampled with ClearML's interval rule, see
`query_api.clearml.histogram`)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import APIRouter

from pipeline.ingest.rows.task_events import EVENT_TYPES
from query_api.clearml import histogram, metric_store
from query_api.clearml import store as clearml_store
from query_api.clearml import task_events_store as task_events_db
from query_api.clearml.calls import (
    TASK_DOC,
    Call,
    action,
    doc,
    get_str_list,
    scroll_codec,
    scroll_state,
    task_param,
)
from query_api.clearml.events_store import SCALAR
from query_api.params import get_choice, get_int, get_str

__all__ = ["MAX_COMPARE_TASKS", "router"]

router = APIRouter()

MAX_COMPARE_TASKS = 10
_SAMPLES = {"type": "integer", "minimum": 0, "maximum": histogram.MAX_SAMPLES,
            "default": histogram.MAX_SAMPLES, "description": "points per series (0: the maximum)"}
_KEYS = ("iter", "timestamp", "iso_time")


async def _one_task(call: Call) -> tuple[str, str]:
    task = task_param(call)
    return task, await task_events_db.resolve_tenant(call.ctx.store, call.key, [task])


@action(router, "get_task_metrics", summary="Metrics reported by each task, per event type",
        body_doc=doc(["tasks"], tasks={"type": "array", "items": TASK_DOC},
                     event_type={"type": "string", "enum": list(EVENT_TYPES)}))
async def get_task_metrics(call: Call) -> dict[str, Any]:
    tasks = get_str_list(call.body, "tasks", max_items=100)
    etype = get_choice(call.body, "event_type", tuple(EVENT_TYPES))
    store = call.ctx.store
    tenant = await task_events_db.resolve_tenant(store, call.key, tasks)
    by_task: dict[str, list[str]] = {t: [] for t in tasks}
    if etype != "log":
        for task, metric in await metric_store.task_metrics(store, tenant, tasks, etype):
            by_task[task].append(metric)
    return {"metrics": [{"task": t, "metrics": m} for t, m in by_task.items()]}


@action(router, "get_scalar_metrics_and_variants", summary="Scalar metrics → variants",
        body_doc=doc(["task"], task=TASK_DOC))
async def get_scalar_metrics_and_variants(call: Call) -> dict[str, Any]:
    task, tenant = await _one_task(call)
    return {"metrics": await metric_store.metrics_and_variants(call.ctx.store, tenant, task,
                                                               SCALAR)}


@action(router, "get_vector_metrics_and_variants", summary="Vector metrics → variants",
        body_doc=doc(["task"], task=TASK_DOC))
async def get_vector_metrics_and_variants(call: Call) -> dict[str, Any]:
    task, tenant = await _one_task(call)
    return {"metrics": await metric_store.metrics_and_variants(call.ctx.store, tenant, task,
                                                               "training_stats_vector")}


@action(router, "get_scalar_metric_data", summary="Scalar events of one metric, by timestamp",
        body_doc=doc(["task", "metric"], task=TASK_DOC, metric={"type": "string"},
                     scroll_id={"type": "string"},
                     batch_size={"type": "integer", "minimum": 1, "maximum": 10_000}))
async def get_scalar_metric_data(call: Call) -> dict[str, Any]:
    task, tenant = await _one_task(call)
    metric = get_str(call.body, "metric", required=True, max_len=1024)
    assert metric is not None
    batch_size = get_int(call.body, "batch_size", default=1000, lo=1, hi=10_000)
    assert batch_size is not None
    expect = {"a": "scalar_data", "t": tenant, "k": task, "m": metric}
    state = scroll_state(call, expect)
    after = (state["ts"], state["id"]) if state and "ts" in state else None
    store = call.ctx.store
    events = await task_events_db.events_page(store, tenant, task, order="asc",
                                              event_type=SCALAR, after=after,
                                              limit=batch_size, metric=metric)
    total = state["n"] if state and "n" in state else \
        await task_events_db.events_total(store, tenant, task, SCALAR, metric)
    pos = events.last or after
    cursor: dict[str, Any] = {**expect, "n": total}
    if pos is not None:
        cursor["ts"], cursor["id"] = pos
    return {"events": events.json(), "returned": events.count,
            "total": total,
            "scroll_id": scroll_codec(call.ctx).encode(cursor)}


@action(router, "get_task_latest_scalar_values",
        summary="Last value and mean of the last 100 values of every scalar variant",
        body_doc=doc(["task"], task=TASK_DOC))
async def get_task_latest_scalar_values(call: Call) -> dict[str, Any]:
    task, tenant = await _one_task(call)
    rows = await metric_store.latest_scalars(call.ctx.store, tenant, task)
    metrics: dict[str, list[dict[str, Any]]] = {}
    last_iter = None
    for metric, variant, last, mean100, top in rows:
        metrics.setdefault(metric, []).append(
            {"name": variant, "last_value": last, "last_100_value": mean100})
        last_iter = top if last_iter is None else max(last_iter, top)
    return {"metrics": [{"name": m, "variants": v} for m, v in metrics.items()],
            "last_iter": last_iter}


@action(router, "vector_metrics_iter_histogram",
        summary="Vectors of one metric/variant per iteration (latest 10,000 iterations)",
        body_doc=doc(["task", "metric", "variant"], task=TASK_DOC, metric={"type": "string"},
                     variant={"type": "string"}))
async def vector_metrics_iter_histogram(call: Call) -> dict[str, Any]:
    task, tenant = await _one_task(call)
    metric = get_str(call.body, "metric", required=True, max_len=1024)
    variant = get_str(call.body, "variant", required=True, max_len=1024)
    rows = await metric_store.vectors(call.ctx.store, tenant, task, metric, variant)
    return {"metric": metric, "variant": variant, "iterations": [int(r[0]) for r in rows],
            "vectors": [list(r[1]) for r in rows]}


def _histogram_params(call: Call) -> tuple[int, str]:
    samples = get_int(call.body, "samples", default=histogram.MAX_SAMPLES, lo=0,
                      hi=histogram.MAX_SAMPLES)
    assert samples is not None
    key = get_choice(call.body, "key", _KEYS, default="iter")
    assert key is not None
    return samples or histogram.MAX_SAMPLES, key


@action(router, "scalar_metrics_iter_histogram",
        summary="Downsampled scalar series of a task: metric → variant → {x, y, y_min, y_max}",
        body_doc=doc(["task"], task=TASK_DOC, samples=_SAMPLES,
                     key={"type": "string", "enum": list(_KEYS)}))
async def scalar_metrics_iter_histogram(call: Call) -> dict[str, Any]:
    task, tenant = await _one_task(call)
    samples, key = _histogram_params(call)
    series = await metric_store.scalar_histograms(call.ctx.store, tenant, [task], samples, key)
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for (_, metric, variant), data in series.items():
        out[metric][variant] = {"name": variant, **data}
    return dict(out)


@action(router, "multi_task_scalar_metrics_iter_histogram",
        summary="Compare scalar series of up to 10 tasks: {metrics: metric → variant → task → "
        "{name (the task's name), x, y, y_min, y_max}}",
        body_doc=doc(["tasks"], tasks={"type": "array", "items": TASK_DOC, "maxItems": 10},
                     samples=_SAMPLES,
                     key={"type": "string", "enum": list(_KEYS)}))
async def multi_task_scalar_metrics_iter_histogram(call: Call) -> dict[str, Any]:
    tasks = get_str_list(call.body, "tasks", max_items=MAX_COMPARE_TASKS)
    samples, key = _histogram_params(call)
    tenant = await task_events_db.resolve_tenant(call.ctx.store, call.key, tasks)
    series = await metric_store.scalar_histograms(call.ctx.store, tenant, tasks, samples, key)
    names = await clearml_store.task_names(call.ctx.store, tenant, tasks)
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for (task, metric, variant), data in series.items():
        out[metric][variant][task] = {"name": names.get(task, task), **data}
    return {"metrics": {m: dict(v) for m, v in out.items()}}
