"""All SQL of the metric reads of the ClearML events API (`query_api.clearml.event_metric_routes`):
metric listings, latest scalar values, vectors, and the downsampled scalar series."""

from __future__ import annotations

from typing import Any

from pipeline.storage.clickhouse import AsyncStore
from query_api.clearml import histogram
from query_api.clearml import task_events_store as task_events_db
from query_api.clearml.events_store import SCALAR

__all__ = ["latest_scalars", "metrics_and_variants", "scalar_histograms", "task_metrics",
           "vectors"]

_X = {"iter": "iter", "timestamp": "toUnixTimestamp64Milli(timestamp)",
      "iso_time": "toUnixTimestamp64Milli(timestamp)"}


async def metrics_and_variants(store: AsyncStore, tenant: str, task: str,
                               etype: str) -> dict[str, list[str]]:
    """Metric → its variants, of one event type of a task."""
    rows = await store.rows(
        f"SELECT DISTINCT metric, variant FROM {store.database}.task_metric_events WHERE "
        f"tenant = {{t:String}} AND task = {{task:String}} AND event_type = {{et:String}} "
        f"ORDER BY metric, variant", {"t": tenant, "task": task, "et": etype})
    out: dict[str, list[str]] = {}
    for metric, variant in rows:
        out.setdefault(metric, []).append(variant)
    return out


async def task_metrics(store: AsyncStore, tenant: str, tasks: list[str], etype: str | None
                       ) -> list[tuple[str, str]]:
    """(task, metric) pairs of the tasks, of one event type or all."""
    rows = await store.rows(
        f"SELECT DISTINCT task, metric FROM {store.database}.task_metric_events WHERE "
        f"tenant = {{t:String}} AND task IN {{tasks:Array(String)}}"
        + (" AND event_type = {et:String}" if etype else "") + " ORDER BY task, metric",
        {"t": tenant, "tasks": tasks, "et": etype or ""})
    return [(t, m) for t, m in rows]


async def latest_scalars(store: AsyncStore, tenant: str, task: str) -> list[Any]:
    """(metric, variant, last value, mean of the last 100, last iteration) per scalar variant."""
    return await store.rows(
        f"SELECT metric, variant, argMax(value, (iter, timestamp)), avg(value), max(iter) FROM ("
        f"SELECT metric, variant, iter, timestamp, value, row_number() OVER (PARTITION BY "
        f"metric, variant ORDER BY iter DESC, timestamp DESC) AS rn FROM "
        f"{store.database}.task_metric_events FINAL WHERE tenant = {{t:String}} AND "
        f"task = {{task:String}} AND event_type = '{SCALAR}') WHERE rn <= 100 "
        f"GROUP BY metric, variant ORDER BY metric, variant", {"t": tenant, "task": task})


async def vectors(store: AsyncStore, tenant: str, task: str, metric: str | None,
                  variant: str | None) -> list[Any]:
    """(iteration, values) of one vector metric/variant, latest 10,000 iterations, oldest
    first."""
    rows = await store.rows(
        f"SELECT iter, values FROM {store.database}.task_metric_events FINAL WHERE "
        f"tenant = {{t:String}} AND task = {{task:String}} AND event_type = "
        f"'training_stats_vector' AND metric = {{m:String}} AND variant = {{v:String}} "
        f"ORDER BY iter DESC, event_id LIMIT 10000",
        {"t": tenant, "task": task, "m": metric, "v": variant})
    rows.reverse()
    return rows


async def scalar_histograms(store: AsyncStore, tenant: str, tasks: list[str], samples: int,
                            key: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(task, metric, variant) → {x, y, y_min, y_max} downsampled to `samples` points."""
    x = _X[key]
    src = (f"SELECT task, metric, variant, value, {x} AS x FROM "
           f"{store.database}.task_metric_events FINAL WHERE tenant = {{t:String}} AND "
           f"task IN {{tasks:Array(String)}} AND event_type = '{SCALAR}' AND "
           f"iter > {histogram.SINGLE_SCALAR_ITERATION}")
    params: dict[str, Any] = {"t": tenant, "tasks": tasks}
    stats = await store.rows(f"SELECT task, metric, variant, count(), min(x), max(x) FROM "
                             f"({src}) GROUP BY task, metric, variant", params)
    if not stats:
        return {}
    ivs = [histogram.interval_for(int(n), int(lo), int(hi), samples)
           for *_, n, lo, hi in stats]
    if len(set(ivs)) == 1:  # the common case: one interval for every series
        iv = str(ivs[0])
    else:
        iv = ("transform(concat(task, '\\x1f', metric, '\\x1f', variant), "
              "{names:Array(String)}, {ivs:Array(Int64)}, toInt64(1))")
        params["names"] = [f"{t}\x1f{m}\x1f{v}" for t, m, v, *_ in stats]
        params["ivs"] = ivs
    rows = await store.rows(
        f"SELECT task, metric, variant, x - positiveModulo(x, {iv}) AS b, avg(value), "
        f"min(value), max(value) FROM ({src}) GROUP BY task, metric, variant, b "
        f"ORDER BY task, metric, variant, b", params)
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for task, metric, variant, b, mean, lo, hi in rows:
        series = out.get((task, metric, variant))
        if series is None:
            series = out[(task, metric, variant)] = {"x": [], "y": [], "y_min": [], "y_max": []}
        series["x"].append(task_events_db.iso_ms(int(b)) if key == "iso_time" else int(b))
        series["y"].append(mean)
        series["y_min"].append(lo)
        series["y_max"].append(hi)
    return out
