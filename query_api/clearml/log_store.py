"""The SQL of task log downloads: one text line per event as a ClickHouse expression, and the
download walked in bounded chunks (see `query_api.clearml.task_log` for the contract)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from pipeline.storage.clickhouse import AsyncStore
from query_api.clearml.task_events_store import Pos, after_clause

__all__ = ["LINE_FIELDS", "chunks", "line_expression"]

_ASCTIME = ("concat(formatDateTime(timestamp, '%Y-%m-%d %H:%i:%S'), ',', "
            "leftPad(toString(toUnixTimestamp64Milli(timestamp) % 1000), 3, '0'))")
#: The placeholders of a line format, as ClickHouse expressions over a log event.
LINE_FIELDS = {
    "asctime": _ASCTIME,
    "timestamp": "toString(toUnixTimestamp64Milli(timestamp))",
    "level": "toString(level)",
    "worker": "toString(worker)",
    "msg": "msg",
}


def line_expression(parts: Sequence[tuple[str, str | None]]) -> tuple[str, dict[str, str]]:
    """(ClickHouse expression of one text line, its literal parameters) for `parts`, each a
    literal text and the `LINE_FIELDS` placeholder after it (None: none)."""
    sql: list[str] = []
    params: dict[str, str] = {}
    for literal, field in parts:
        if literal:
            name = f"lit{len(params)}"
            params[name] = literal
            sql.append(f"{{{name}:String}}")
        if field is not None:
            sql.append(LINE_FIELDS[field])
    return (f"concat({', '.join(sql)}, '')" if sql else "''"), params


async def chunks(store: AsyncStore, tenant: str, task: str,
                 template: tuple[str, dict[str, str]] | None, *, chunk: int,
                 chunk_bytes: int) -> AsyncIterator[bytes]:
    """The task's log as text lines (`template`: a `line_expression`) or JSON lines, in chunks
    of at most `chunk` lines or `chunk_bytes` of messages, up to the last line that existed
    when the walk started."""
    db = store.database
    base = {"t": tenant, "task": task}
    scope = "tenant = {t:String} AND task = {task:String}"
    table = f"{db}.task_log_events FINAL"
    last = await store.rows(
        f"SELECT toUnixTimestamp64Milli(timestamp), event_id FROM {table} WHERE {scope} "
        f"ORDER BY timestamp DESC, event_id DESC LIMIT 1", base)
    if not last:
        return
    end: Pos = (int(last[0][0]), last[0][1])
    cursor: Pos | None = None
    while True:
        params: dict[str, Any] = {**base, "ets": end[0], "eid": end[1]}
        where = scope + (" AND (timestamp < fromUnixTimestamp64Milli({ets:Int64}, 'UTC') "
                         "OR (timestamp = fromUnixTimestamp64Milli({ets:Int64}, 'UTC') "
                         "AND event_id <= {eid:String}))")
        if cursor is not None:
            where += " AND " + after_clause("asc")
            params["ts"], params["id"] = cursor
        # the chunk ends at `chunk` lines or `chunk_bytes` of messages, whichever comes first
        bound = await store.rows(
            f"SELECT ts, id FROM (SELECT toUnixTimestamp64Milli(timestamp) AS ts, "
            f"event_id AS id, sum(length(msg) + 64) OVER w AS cum, row_number() OVER w "
            f"AS rn FROM (SELECT timestamp, event_id, msg FROM {table} WHERE {where} "
            f"ORDER BY timestamp, event_id LIMIT {chunk}) WINDOW w AS (ORDER BY timestamp, "
            f"event_id ROWS UNBOUNDED PRECEDING)) WHERE cum >= {chunk_bytes} OR rn = {chunk} "
            f"ORDER BY ts, id LIMIT 1", params)
        upper: Pos = (int(bound[0][0]), bound[0][1]) if bound else end
        params["ets"], params["eid"] = upper
        if template is not None:
            expr, lits = template
            sql = (f"SELECT {expr} FROM {table} WHERE {where} "
                   f"ORDER BY timestamp, event_id")
            data = await store.raw(sql, "TabSeparatedRaw", {**params, **lits})
        else:
            sql = (f"SELECT toUnixTimestamp64Milli(ts) AS timestamp, asctime, level, worker, "
                   f"msg FROM (SELECT timestamp AS ts, event_id AS eid, {_ASCTIME} AS "
                   f"asctime, level, worker, msg FROM {table} WHERE {where}) "
                   f"ORDER BY ts, eid")
            data = await store.raw(sql, "JSONEachRow", params,
                                   {"output_format_json_quote_64bit_integers": 0})
        if data:
            yield data
        if upper == end:
            return
        cursor = upper
