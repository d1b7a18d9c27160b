"""All SQL of the plots and debug-images actions (`query_api.clearml.event_media_routes`):
the latest iterations per metric/variant, and debug image navigation."""

from __future__ import annotations

from typing import Any

from pipeline.storage.clickhouse import AsyncStore
from query_api.clearml import task_events_store as task_events_db
from query_api.clearml.events_store import IMAGE
from query_api.clearml.task_events_store import METRIC_SELECT, event_from_row

__all__ = ["IMAGE", "image_at", "image_range", "image_step", "latest_iters"]



async def latest_iters(store: AsyncStore, tenant: str, tasks: list[str], etype: str, *,
                       iters: int, after: list[Any] | None, limit: int
                       ) -> tuple[list[dict[str, Any]], int, list[Any] | None]:
    """Events of the latest `iters` iterations of every (task, metric, variant), ordered by
    (task, metric, variant, iteration descending, event_id), past `after`; with the total
    and the position of the last event returned."""
    params: dict[str, Any] = {"t": tenant, "tasks": tasks, "et": etype, "iters": iters}
    ranked = (f"SELECT *, dense_rank() OVER (PARTITION BY task, metric, variant ORDER BY iter "
              f"DESC) AS r FROM {store.database}.task_metric_events FINAL WHERE "
              f"tenant = {{t:String}} AND task IN {{tasks:Array(String)}} AND "
              f"event_type = {{et:String}}")
    where = "r <= {iters:UInt64}"
    total = (await store.rows(f"SELECT count() FROM ({ranked}) WHERE {where}", params))[0][0]
    if after is not None:
        where += (" AND (task, metric, variant, -iter, event_id) > ({a0:String}, {a1:String}, "
                  "{a2:String}, {a3:Int64}, {a4:String})")
        params.update({f"a{i}": v for i, v in enumerate(after)})
    order = "ORDER BY task, metric, variant, iter DESC, event_id"
    sizes = await store.rows(f"SELECT length(plot_str) + length(url) + length(key) + 256 FROM "
                             f"({ranked}) WHERE {where} {order} LIMIT {limit}", params)
    used, fit = 0, len(sizes)
    for n, (size,) in enumerate(sizes):  # at most PAGE_BYTES of events per page (>= 1)
        used += int(size)
        if used > task_events_db.PAGE_BYTES:
            fit = max(1, n)
            break
    rows = await store.rows(f"SELECT {METRIC_SELECT} FROM ({ranked}) WHERE {where} {order} "
                            f"LIMIT {fit}", params) if fit else []
    events = [event_from_row(r) for r in rows]
    last = rows[-1] if rows else None
    pos = [last[12], last[4], last[5], -int(last[3]), last[2]] if last is not None else after
    return events, int(total), pos



async def image_range(store: AsyncStore, tenant: str, task: str, metric: str, variant: str
                      ) -> tuple[Any, Any, int]:
    """(first iteration, last iteration, images) of one metric/variant."""
    rng = await store.rows(
        f"SELECT min(iter), max(iter), count() FROM {store.database}.task_metric_events FINAL "
        f"WHERE tenant = {{t:String}} AND task = {{task:String}} AND event_type = '{IMAGE}' "
        f"AND metric = {{m:String}} AND variant = {{v:String}}",
        {"t": tenant, "task": task, "m": metric, "v": variant})
    lo, hi, n = rng[0]
    return lo, hi, int(n)


async def image_at(store: AsyncStore, tenant: str, task: str, metric: str, variant: str,
                   it: int, *, exact: bool = False) -> Any | None:
    """The image at iteration `it`; unless `exact`, the latest at or before it, else the
    earliest after it."""
    order = ("ORDER BY timestamp DESC, event_id" if exact else
             "ORDER BY iter <= {it:Int64} DESC, if(iter <= {it:Int64}, -iter, iter), "
             "timestamp DESC, event_id")
    cond = "AND iter = {it:Int64} " if exact else ""
    rows = await store.rows(
        f"SELECT {METRIC_SELECT} FROM {store.database}.task_metric_events FINAL WHERE "
        f"tenant = {{t:String}} AND task = {{task:String}} AND event_type = '{IMAGE}' AND "
        f"metric = {{m:String}} AND variant = {{v:String}} {cond}{order} LIMIT 1",
        {"t": tenant, "task": task, "m": metric, "v": variant, "it": it})
    return rows[0] if rows else None


async def image_step(store: AsyncStore, tenant: str, task: str, metric: str, variant: str,
                     it: int, *, earlier: bool) -> Any | None:
    """The image after (before, if `earlier`) (iteration, variant) in that order."""
    op, d = ("<", "DESC") if earlier else (">", "ASC")
    rows = await store.rows(
        f"SELECT {METRIC_SELECT} FROM {store.database}.task_metric_events FINAL WHERE "
        f"tenant = {{t:String}} AND task = {{task:String}} AND event_type = '{IMAGE}' AND "
        f"metric = {{m:String}} AND (iter, variant) {op} ({{it:Int64}}, {{v:String}}) "
        f"ORDER BY iter {d}, variant {d}, timestamp DESC, event_id LIMIT 1",
        {"t": tenant, "task": task, "m": metric, "v": variant, "it": it})
    return rows[0] if rows else None
