"""ClickHouse reads of task events: ownership, event and log pages, delete. Every query is
scoped to one tenant. Pages come back as ClearML-shaped event JSON built by ClickHouse
(`Page`, one object per line); single events as dicts (`event_from_row`).

Positions are `(timestamp ms, event_id)`: a total order over a task's events (event ids are
unique per task), used by the keyset cursors of `query_api.clearml.scroll`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.storage.clickhouse import AsyncStore
from pipeline.storage.keys import ApiKey
from query_api.errors import ApiError

__all__ = [
    "LOG_JSON",
    "METRIC_JSON",
    "METRIC_SELECT",
    "PAGE_BYTES",
    "Page",
    "Pos",
    "after_clause",
    "event_from_row",
    "foreign_tasks",
    "iso_ms",
    "resolve_owner",
    "resolve_tenant",
]

Pos = tuple[int, str]

METRIC_SELECT = (
    "event_type, toUnixTimestamp64Milli(timestamp), event_id, iter, metric, variant, value, "
    "values, key, url, plot_str, worker, task")


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{ms % 1000:03d}Z"


def event_from_row(r: Sequence[Any]) -> dict[str, Any]:
    """A ClearML-shaped event (dict) from a METRIC_SELECT row."""
    etype, ts, task = r[0], int(r[1]), r[12]
    e: dict[str, Any] = {"type": etype, "task": task, "timestamp": ts, "@timestamp": iso_ms(ts),
                         "id": r[2]}
    e.update(iter=int(r[3]), metric=r[4], variant=r[5])
    if etype == "training_stats_scalar":
        e["value"] = r[6]
    elif etype == "training_stats_vector":
        e["values"] = list(r[7])
    elif etype == "training_debug_image":
        e.update(key=r[8], url=r[9])
    else:
        e["plot_str"] = r[10]
    if r[11]:
        e["worker"] = r[11]
    return e


def after_clause(order: str) -> str:
    """Keyset condition on (timestamp, event_id) past params {ts} and {id}, for `order`."""
    op = ">" if order == "asc" else "<"
    return (f"(timestamp {op} fromUnixTimestamp64Milli({{ts:Int64}}, 'UTC') OR "
            f"(timestamp = fromUnixTimestamp64Milli({{ts:Int64}}, 'UTC') AND "
            f"event_id {op} {{id:String}}))")


async def resolve_tenant(store: AsyncStore, key: ApiKey, tasks: Sequence[str]) -> str:
    """The tenant whose events of `tasks` the key may read: the key's own tenant when it
    reported the tasks; 403 when only another tenant did (superadmin: that tenant); 404 when
    nobody reported events of a task."""
    return (await resolve_owner(store, key, tasks))[0]


async def foreign_tasks(store: AsyncStore, tenant: str, tasks: set[str]) -> list[str]:
    """The tasks another tenant owns (reported first) and `tenant` does not, sorted."""
    rows = await store.rows(
        f"SELECT DISTINCT task FROM {store.database}.task_owners FINAL "
        f"WHERE task IN {{tasks:Array(String)}} AND tenant != {{tenant:String}} "
        f"AND task NOT IN (SELECT task FROM {store.database}.task_owners FINAL "
        f"WHERE tenant = {{tenant:String}} AND task IN {{tasks:Array(String)}})",
        {"tasks": sorted(tasks), "tenant": tenant})
    return sorted(str(r[0]) for r in rows)


async def resolve_owner(store: AsyncStore, key: ApiKey, tasks: Sequence[str]
                        ) -> tuple[str, frozenset[str]]:
    """(tenant as `resolve_tenant`, the kinds of events — 'metrics', 'logs' — that tenant
    reported for the tasks)."""
    rows = await store.rows(
        f"SELECT task, tenant, groupUniqArray(kind) FROM {store.database}.task_owners FINAL "
        f"WHERE task IN {{tasks:Array(String)}} GROUP BY task, tenant", {"tasks": list(tasks)})
    owners: dict[str, dict[str, list[str]]] = {}
    for task, tenant, kinds in rows:
        owners.setdefault(task, {})[tenant] = list(kinds)
    chosen: set[str] = set()
    for task in tasks:
        tenants = owners.get(task)
        if not tenants:
            raise ApiError(404, "NOT_FOUND", f"unknown task {task!r}: no events were reported "
                           "for it", {"parameter": "task", "value": task})
        if key.tenant in tenants:
            chosen.add(key.tenant)
        elif key.role == "superadmin":
            chosen.add(sorted(tenants)[0])
        else:
            raise ApiError(403, "INSUFFICIENT_PERMISSIONS",
                           f"task {task!r} belongs to another tenant",
                           {"requiredPermission": "tenant:own", "currentPermissions": [key.role]})
    if len(chosen) > 1:
        raise ApiError(400, "INVALID_PARAMETERS", "tasks belong to different tenants",
                       {"parameter": "tasks", "value": list(tasks)[:20]})
    tenant = chosen.pop()
    return tenant, frozenset(k for t in tasks for k in owners[t].get(tenant, ()))


_ISO = ("concat(formatDateTime(timestamp, '%Y-%m-%dT%H:%i:%S.'), "
        "leftPad(toString(toUnixTimestamp64Milli(timestamp) % 1000), 3, '0'), 'Z')")


def _head(type_expr: str) -> str:
    return (f"""'{{"type":', toJSONString({type_expr}), ',"task":', toJSONString(task), """
            f"""',"timestamp":', toString(toUnixTimestamp64Milli(timestamp)), """
            f"""',"@timestamp":"', {_ISO}, '","id":"', event_id, '"'""")


#: One event as ClearML JSON, built by ClickHouse (no per-row Python work on large pages).
METRIC_JSON = (
    f"""concat({_head("toString(event_type)")}, ',"iter":', toString(iter), """
    """',"metric":', toJSONString(metric), ',"variant":', toJSONString(variant), multiIf("""
    """event_type = 'training_stats_scalar', concat(',"value":', toString(value)), """
    """event_type = 'training_stats_vector', concat(',"values":', toJSONString(values)), """
    """event_type = 'training_debug_image', concat(',"key":', toJSONString(key), """
    """',"url":', toJSONString(url)), concat(',"plot_str":', toJSONString(plot_str))), """
    """if(worker = '', '', concat(',"worker":', toJSONString(toString(worker)))), '}')""")
LOG_JSON = (
    f"""concat({_head("'log'")}, ',"level":', toJSONString(toString(level)), """
    """',"worker":', toJSONString(toString(worker)), ',"msg":', toJSONString(msg), '}')""")


def _page_sql(table: str, json: str, where: str, order: str, limit: int) -> str:
    """(position ms, event_id, event JSON) of one table's page; JSON is built after LIMIT."""
    d = "ASC" if order == "asc" else "DESC"
    return (f"SELECT toUnixTimestamp64Milli(timestamp) AS c1, event_id AS c2, {json} AS j "
            f"FROM (SELECT * FROM {table} FINAL WHERE {where} "
            f"ORDER BY timestamp {d}, event_id {d} LIMIT {limit})")


@dataclass(frozen=True)
class Page:
    """A page of events as ClickHouse wrote them: one JSON object per line (JSON strings
    escape newlines, so lines split unambiguously), and the position of the last one."""

    lines: bytes
    count: int
    last: Pos | None
    #: |last timestamp - first timestamp| in ms: the time span the page covered
    span_ms: int = 0

    @classmethod
    def parse(cls, data: bytes) -> Page:
        count = data.count(b"\n")
        if not count:
            return cls(b"", 0, None)
        head = orjson.loads(data[:data.find(b"\n")])
        tail = orjson.loads(data[data.rstrip(b"\n").rfind(b"\n") + 1:])
        return cls(data, count, (int(tail["timestamp"]), tail["id"]),
                   abs(int(tail["timestamp"]) - int(head["timestamp"])))

    def json(self, *, reverse: bool = False) -> orjson.Fragment:
        """The events as one pre-serialised JSON array (optionally in reverse order)."""
        body = self.lines.rstrip(b"\n")
        if reverse:
            body = b"\n".join(reversed(body.split(b"\n")))
        return orjson.Fragment(b"[" + body.replace(b"\n", b",") + b"]")


async def events_page(store: AsyncStore, tenant: str, task: str, *, order: str,
                      event_type: str | None, after: Pos | None, limit: int,
                      metric: str | None = None, window_ms: int | None = None,
                      kinds: frozenset[str] = frozenset({"metrics", "logs"})) -> Page:
    """Up to `limit` events of the task past `after` in (timestamp, event_id) `order`, as
    one JSON object per line.

    `window_ms` (a hint, e.g. from the previous page's span) first reads only events within
    that time of `after`: metric events are not stored in timestamp order, so this lets the
    timestamp skip index prune the rest of the task. The first `limit` events of such a
    window are the first `limit` events overall; a window holding fewer is read again whole.
    `kinds` (from `resolve_owner`) names the tables that may hold events of the task.
    """
    if after is not None and window_ms:
        op = "+" if order == "asc" else "-"
        bound = ("(timestamp " + ("<" if order == "asc" else ">") +
                 f" fromUnixTimestamp64Milli({{ts:Int64}} {op} {int(window_ms)}, 'UTC'))")
        page = await _events_page(store, tenant, task, order=order, event_type=event_type,
                                  after=after, limit=limit, metric=metric, bound=bound,
                                  kinds=kinds)
        if page.count == limit:
            return page
    return await _events_page(store, tenant, task, order=order, event_type=event_type,
                              after=after, limit=limit, metric=metric, bound=None, kinds=kinds)


def _task_past(tenant: str, task: str, after: Pos | None, order: str
               ) -> tuple[str, dict[str, Any]]:
    """(condition, parameters) of the task's events, past position `after` in `order` when
    given."""
    params: dict[str, Any] = {"t": tenant, "task": task}
    where = "tenant = {t:String} AND task = {task:String}"
    if after is not None:
        where += " AND " + after_clause(order)
        params["ts"], params["id"] = after
    return where, params


async def _events_page(store: AsyncStore, tenant: str, task: str, *, order: str,
                       event_type: str | None, after: Pos | None, limit: int,
                       metric: str | None, bound: str | None, kinds: frozenset[str]) -> Page:
    db = store.database
    where, params = _task_past(tenant, task, after, order)
    if bound is not None:
        where += " AND " + bound
    metrics = event_type != "log" and bool(kinds & {"metrics", "blobs"})
    logs = event_type in (None, "log") and metric is None and "logs" in kinds
    if "blobs" in kinds and event_type not in ("training_stats_scalar",
                                                "training_debug_image"):
        limit = await _fitting(store, params, where, event_type, metric, order, limit,
                               metrics=metrics, logs=logs)
    parts = []
    if metrics:
        mwhere = where
        if event_type:
            mwhere += " AND event_type = {et:String}"
            params["et"] = event_type
        if metric is not None:
            mwhere += " AND metric = {metric:String}"
            params["metric"] = metric
        parts.append(_page_sql(f"{db}.task_metric_events", METRIC_JSON, mwhere, order, limit))
    if logs:
        parts.append(_page_sql(f"{db}.task_log_events", LOG_JSON, where, order, limit))
    if not parts:
        return Page(b"", 0, None)
    d = "ASC" if order == "asc" else "DESC"
    sql = parts[0] if len(parts) == 1 else (
        f"SELECT * FROM ({' UNION ALL '.join(f'({p})' for p in parts)}) "
        f"ORDER BY c1 {d}, c2 {d} LIMIT {limit}")
    return Page.parse(await store.raw(f"SELECT j FROM ({sql})", "TabSeparatedRaw", params))


#: Upper bound of the event bytes one page carries (plots and vectors can weigh MBs each).
PAGE_BYTES = 32 * 1024 * 1024
_METRIC_SIZE = "toString(length(plot_str) + length(url) + length(key) + 24 * length(values) + 256)"
_LOG_SIZE = "toString(length(msg) + 256)"


async def _fitting(store: AsyncStore, params: dict[str, Any], where: str,
                   event_type: str | None, metric: str | None, order: str, limit: int, *,
                   metrics: bool, logs: bool) -> int:
    """How many of the next `limit` events fit in PAGE_BYTES (at least 1): sizes are read
    first, so a page of large plots or log lines never builds gigabytes of JSON."""
    db = store.database
    mwhere = where + (" AND event_type = {et:String}" if event_type else "") + \
        (" AND metric = {metric:String}" if metric is not None else "")
    parts = []
    if metrics:
        parts.append(_page_sql(f"{db}.task_metric_events", _METRIC_SIZE, mwhere, order, limit))
    if logs:
        parts.append(_page_sql(f"{db}.task_log_events", _LOG_SIZE, where, order, limit))
    if not parts:
        return limit
    d = "ASC" if order == "asc" else "DESC"
    sql = (f"SELECT j FROM ({' UNION ALL '.join(f'({p})' for p in parts)}) "
           f"ORDER BY c1 {d}, c2 {d} LIMIT {limit}")
    sizes = (await store.raw(sql, "TabSeparatedRaw",
                             {**params, "et": event_type or "", "metric": metric or ""})).split()
    used = 0
    for n, size in enumerate(sizes):
        used += int(size)
        if used > PAGE_BYTES:
            return max(1, n)
    return limit


async def events_total(store: AsyncStore, tenant: str, task: str, event_type: str | None,
                       metric: str | None = None) -> int:
    db = store.database
    params: dict[str, Any] = {"t": tenant, "task": task, "et": event_type or "",
                              "metric": metric or ""}
    where = "tenant = {t:String} AND task = {task:String}"
    parts = []
    if event_type != "log":
        mwhere = where + (" AND event_type = {et:String}" if event_type else "")
        mwhere += " AND metric = {metric:String}" if metric is not None else ""
        parts.append(f"(SELECT count() FROM {db}.task_metric_events FINAL WHERE {mwhere})")
    if event_type in (None, "log") and metric is None:
        parts.append(f"(SELECT count() FROM {db}.task_log_events FINAL WHERE {where})")
    rows = await store.rows("SELECT " + " + ".join(parts), params)
    return int(rows[0][0])


async def log_page(store: AsyncStore, tenant: str, task: str, *, direction: str,
                   after: Pos | None, from_ts: int | None, limit: int,
                   kinds: frozenset[str] = frozenset({"logs", "blobs"})) -> Page:
    """Log events in `direction` (asc: later, desc: earlier) past a position, or strictly
    past `from_ts` (ms), or from the start/end of the log."""
    where, params = _task_past(tenant, task, after, direction)
    if after is None and from_ts is not None:
        op = ">" if direction == "asc" else "<"
        where += f" AND timestamp {op} fromUnixTimestamp64Milli({{fts:Int64}}, 'UTC')"
        params["fts"] = from_ts
    if "blobs" in kinds:
        limit = await _fitting(store, params, where, "log", None, direction, limit,
                               metrics=False, logs=True)
    sql = _page_sql(f"{store.database}.task_log_events", LOG_JSON, where, direction, limit)
    return Page.parse(await store.raw(f"SELECT j FROM ({sql})", "TabSeparatedRaw", params))


async def delete_task(store: AsyncStore, tenant: str, task: str) -> int:
    """Delete every event of the task; returns how many there were."""
    total = await events_total(store, tenant, task, None)
    db = store.database
    params = {"t": tenant, "task": task}
    for table in ("task_metric_events", "task_log_events"):
        await store.command(
            f"ALTER TABLE {db}.{table} DELETE WHERE tenant = {{t:String}} AND "
            f"task = {{task:String}} SETTINGS mutations_sync = 1", params)
    return total
