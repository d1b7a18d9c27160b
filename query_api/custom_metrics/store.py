"""All SQL of the custom metrics routes, over `metrics_1s` (FINAL: redelivered messages count
once) and the series registry `metric_series`."""

from __future__ import annotations

from typing import Any

from pipeline.storage.clickhouse import AsyncStore

__all__ = ["MAX_ROWS", "kinds_of", "points", "series"]

MAX_ROWS = 200_000


async def points(store: AsyncStore, *, tenant: str, name: str, kind: str | None, t1: int,
                 t2: int, step: int, filters: list[tuple[str, str]], group_by: str | None,
                 with_hist: bool) -> list[tuple[Any, ...]]:
    """Rows (step index, group, count, sum, min, max, last, hist, kinds) for [t1, t2), at most
    `MAX_ROWS` + 1 (one more says the answer would be too large)."""
    params: dict[str, Any] = {"tenant": tenant, "name": name, "t1": t1, "t2": t2,
                              "gk": group_by or "", "kind": kind or ""}
    where = " AND kind = {kind:String}" if kind else ""
    for i, (k, v) in enumerate(filters):
        where += f" AND tags[{{k{i}:String}}] = {{v{i}:String}}"
        params[f"k{i}"], params[f"v{i}"] = k, v
    group = "tags[{gk:String}]" if group_by else "''"
    hist = "sumMap(hist)" if with_hist else "0"
    sql = (f"SELECT intDiv(toUnixTimestamp(bucket) - {t1}, {step}) AS k, {group} AS g, "
           f"sum(count), sum(sum), min(min), max(max), "
           f"argMax(last, (last_ts, src_partition, src_offset)), {hist}, groupUniqArray(kind) "
           f"FROM {store.database}.metrics_1s FINAL "
           f"WHERE tenant = {{tenant:String}} AND name = {{name:String}} "
           f"AND bucket >= toDateTime({{t1:Int64}}, 'UTC') "
           f"AND bucket < toDateTime({{t2:Int64}}, 'UTC'){where} "
           f"GROUP BY k, g ORDER BY g, k LIMIT {MAX_ROWS + 1}")
    return await store.rows(sql, params)


async def kinds_of(store: AsyncStore, tenant: str, name: str) -> list[str]:
    """The kinds the tenant has sent `name` under, by the series registry."""
    rows = await store.rows(
        f"SELECT DISTINCT kind FROM {store.database}.metric_series FINAL "
        f"WHERE tenant = {{tenant:String}} AND name = {{name:String}} ORDER BY kind",
        {"tenant": tenant, "name": name})
    return [str(k) for (k,) in rows]


async def series(store: AsyncStore, tenant: str, name: str | None, prefix: str | None,
                 limit: int) -> list[tuple[Any, ...]]:
    """(name, kind, series key, last seen ms) of the tenant's series, by name and tags."""
    params: dict[str, Any] = {"tenant": tenant, "name": name or "", "prefix": prefix or ""}
    where = " AND name = {name:String}" if name else ""
    where += " AND startsWith(name, {prefix:String})" if prefix else ""
    return await store.rows(
        f"SELECT name, kind, series_key, toUnixTimestamp64Milli(last_seen) "
        f"FROM {store.database}.metric_series FINAL WHERE tenant = {{tenant:String}}{where} "
        f"ORDER BY name, series_key, kind LIMIT {limit}", params)
