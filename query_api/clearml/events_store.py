"""SQL of the events actions in `query_api.clearml.events`: plot navigation, single-value
metrics, raw scalar pages, log clearing. Every query is scoped to one tenant; rows come back
as METRIC_SELECT rows (`query_api.clearml.task_events_store.event_from_row` turns them into events).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.storage.clickhouse import AsyncStore
from query_api.clearml.histogram import SINGLE_SCALAR_ITERATION
from query_api.clearml.task_events_store import METRIC_SELECT

__all__ = ["IMAGE", "PLOT", "clear_log", "latest_iteration", "latest_per_metric", "metric_range",
           "metrics_with", "plots_at", "raw_scalars", "scalar_count", "single_values",
           "step_from"]

PLOT = "plot"
IMAGE = "training_debug_image"
SCALAR = "training_stats_scalar"
_X = {"iter": "iter", "timestamp": "toUnixTimestamp64Milli(timestamp)",
      "iso_time": "toUnixTimestamp64Milli(timestamp)"}


def _table(store: AsyncStore) -> str:
    return f"{store.database}.task_metric_events FINAL"


async def latest_per_metric(store: AsyncStore, tenant: str, event_type: str,
                            pairs: Sequence[tuple[str, str]], bounds: Sequence[int],
                            default: int, *, earlier: bool, iters: int
                            ) -> list[tuple[Any, ...]]:
    """Events of `event_type` (PLOT or IMAGE) of the next `iters` iterations of each (task,
    metric) past its bound (earlier: below it, else above), ordered by task, metric, iteration
    (in the walking direction), variant."""
    names = [f"{t}\x1f{m}" for t, m in pairs]
    op, d = ("<", "DESC") if earlier else (">", "ASC")
    return await store.rows(
        f"SELECT {METRIC_SELECT} FROM (SELECT *, dense_rank() OVER (PARTITION BY task, metric "
        f"ORDER BY iter {d}) AS r FROM {_table(store)} WHERE tenant = {{t:String}} AND "
        f"event_type = '{event_type}' AND concat(task, '\\x1f', metric) IN "
        f"{{names:Array(String)}} AND iter {op} transform(concat(task, '\\x1f', metric), "
        f"{{names:Array(String)}}, {{bounds:Array(Int64)}}, toInt64({default}))) "
        f"WHERE r <= {int(iters)} ORDER BY task, metric, iter {d}, variant, event_id",
        {"t": tenant, "names": names, "bounds": list(bounds)})


async def metrics_with(store: AsyncStore, tenant: str, tasks: Sequence[str], event_type: str
                       ) -> list[tuple[str, str]]:
    """The (task, metric) pairs of `tasks` that have events of `event_type`, sorted."""
    rows = await store.rows(
        f"SELECT DISTINCT task, metric FROM {store.database}.task_metric_events WHERE "
        f"tenant = {{t:String}} AND task IN {{tasks:Array(String)}} AND "
        f"event_type = '{event_type}' ORDER BY task, metric",
        {"t": tenant, "tasks": list(tasks)})
    return [(str(t), str(m)) for t, m in rows]


async def metric_range(store: AsyncStore, tenant: str, task: str, metric: str
                       ) -> tuple[int, int] | None:
    """(min, max) iteration of the task's plots of `metric`; None without any."""
    rows = await store.rows(
        f"SELECT min(iter), max(iter), count() FROM {_table(store)} WHERE tenant = {{t:String}} "
        f"AND task = {{task:String}} AND event_type = '{PLOT}' AND metric = {{m:String}}",
        {"t": tenant, "task": task, "m": metric})
    lo, hi, n = rows[0]
    return (int(lo), int(hi)) if n else None


async def plots_at(store: AsyncStore, tenant: str, task: str, metric: str, iteration: int
                   ) -> list[tuple[Any, ...]]:
    """Every variant's plot of `metric` at `iteration`, by variant."""
    return await store.rows(
        f"SELECT {METRIC_SELECT} FROM {_table(store)} WHERE tenant = {{t:String}} AND "
        f"task = {{task:String}} AND event_type = '{PLOT}' AND metric = {{m:String}} AND "
        f"iter = {{it:Int64}} ORDER BY variant, event_id",
        {"t": tenant, "task": task, "m": metric, "it": iteration})


async def latest_iteration(store: AsyncStore, tenant: str, task: str, metric: str,
                           at_most: int) -> int | None:
    """The latest iteration <= `at_most` with a plot of `metric` (else the earliest after)."""
    rows = await store.rows(
        f"SELECT iter FROM {_table(store)} WHERE tenant = {{t:String}} AND "
        f"task = {{task:String}} AND event_type = '{PLOT}' AND metric = {{m:String}} "
        f"ORDER BY iter <= {{it:Int64}} DESC, if(iter <= {{it:Int64}}, -iter, iter) LIMIT 1",
        {"t": tenant, "task": task, "m": metric, "it": at_most})
    return int(rows[0][0]) if rows else None


async def step_from(store: AsyncStore, tenant: str, task: str, metric: str, iteration: int,
                    *, earlier: bool, same_metric: bool) -> tuple[str, int] | None:
    """The (metric, iteration) next to (metric, iteration) in (iteration, metric) order (earlier:
    the previous one); with `same_metric`, the same metric's next iteration."""
    op, d = ("<", "DESC") if earlier else (">", "ASC")
    params = {"t": tenant, "task": task, "m": metric, "it": iteration}
    where = (f"tenant = {{t:String}} AND task = {{task:String}} AND event_type = '{PLOT}' AND "
             + (f"metric = {{m:String}} AND iter {op} {{it:Int64}}" if same_metric else
                f"(iter, metric) {op} ({{it:Int64}}, {{m:String}})"))
    rows = await store.rows(f"SELECT metric, iter FROM {_table(store)} WHERE {where} "
                            f"ORDER BY iter {d}, metric {d} LIMIT 1", params)
    return (str(rows[0][0]), int(rows[0][1])) if rows else None


async def single_values(store: AsyncStore, tenant: str, tasks: Sequence[str],
                        metrics: dict[str, list[str]] | None) -> list[tuple[Any, ...]]:
    """(task, metric, variant, value, timestamp ms) of the single-value scalars (reported at
    ClearML's single-value iteration), by task, metric, variant."""
    params: dict[str, Any] = {"t": tenant, "tasks": list(tasks)}
    where = ""
    if metrics:
        conds = []
        for i, (metric, variants) in enumerate(sorted(metrics.items())):
            params[f"m{i}"], params[f"v{i}"] = metric, variants
            conds.append(f"(metric = {{m{i}:String}}" + (
                f" AND variant IN {{v{i}:Array(String)}})" if variants else ")"))
        where = " AND (" + " OR ".join(conds) + ")"
    return await store.rows(
        f"SELECT task, metric, variant, value, toUnixTimestamp64Milli(timestamp) FROM "
        f"{_table(store)} WHERE tenant = {{t:String}} AND task IN {{tasks:Array(String)}} AND "
        f"event_type = '{SCALAR}' AND iter = {SINGLE_SCALAR_ITERATION}{where} "
        f"ORDER BY task, metric, variant", params)


def _scalar_where(variants: Sequence[str]) -> str:
    return (f"tenant = {{t:String}} AND task = {{task:String}} AND event_type = '{SCALAR}' AND "
            f"metric = {{m:String}}" + (" AND variant IN {vs:Array(String)}" if variants else ""))


async def scalar_count(store: AsyncStore, tenant: str, task: str, metric: str,
                       variants: Sequence[str]) -> int:
    rows = await store.rows(f"SELECT count() FROM {_table(store)} WHERE "
                            f"{_scalar_where(variants)}",
                            {"t": tenant, "task": task, "m": metric, "vs": list(variants)})
    return int(rows[0][0])


async def raw_scalars(store: AsyncStore, tenant: str, task: str, metric: str,
                      variants: Sequence[str], key: str, after: list[Any] | None, limit: int
                      ) -> list[tuple[Any, ...]]:
    """(x, variant, event_id, value) of one metric's scalars in (x, variant, event_id) order
    past `after`, x being the iteration or the timestamp (ms)."""
    x = _X[key]
    params: dict[str, Any] = {"t": tenant, "task": task, "m": metric, "vs": list(variants)}
    where = _scalar_where(variants)
    if after is not None:
        where += (f" AND ({x}, variant, event_id) > ({{a0:Int64}}, {{a1:String}}, "
                  f"{{a2:String}})")
        params.update(a0=int(after[0]), a1=str(after[1]), a2=str(after[2]))
    return await store.rows(
        f"SELECT {x} AS x, variant, event_id, value FROM {_table(store)} WHERE {where} "
        f"ORDER BY x, variant, event_id LIMIT {int(limit)}", params)


async def clear_log(store: AsyncStore, tenant: str, task: str, before_ms: int | None) -> int:
    """Delete the task's log lines (those before `before_ms` when given); how many there were."""
    params: dict[str, Any] = {"t": tenant, "task": task, "b": before_ms or 0}
    where = "tenant = {t:String} AND task = {task:String}"
    if before_ms is not None:
        where += " AND timestamp < fromUnixTimestamp64Milli({b:Int64}, 'UTC')"
    rows = await store.rows(f"SELECT count() FROM {store.database}.task_log_events FINAL "
                            f"WHERE {where}", params)
    await store.command(f"ALTER TABLE {store.database}.task_log_events DELETE WHERE {where} "
                        f"SETTINGS mutations_sync = 1", params)
    return int(rows[0][0])
