"""Task logs: pages for `get_task_log`, and the streaming `download_task_log` attachment.

Downloads are produced by ClickHouse itself (one `concat` per line for text, JSONEachRow for
JSON lines) in chunks of at most `CHUNK` lines or `CHUNK_BYTES` of messages, walked by keyset
over (timestamp, event_id), up to the last line that existed when the download started. Memory
stays bounded by one chunk, whatever the log's length.

`line_format` is a Python format string over the placeholders asctime (UTC,
`YYYY-MM-DD HH:MM:SS,mmm`), timestamp (epoch ms), level, worker and msg; any other placeholder,
a positional `{}`, or a conversion/format spec (`{msg!r}`, `{level:>8}`) is a 400.
"""

from __future__ import annotations

import logging
import string
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

from pipeline.storage.clickhouse import AsyncStore
from query_api.clearml.task_events_store import Pos, after_clause, log_page
from query_api.errors import bad_param

__all__ = ["CHUNK", "CHUNK_BYTES", "DEFAULT_FORMAT", "PLACEHOLDERS", "compile_format", "download",
           "page"]

log = logging.getLogger("vitals.api")

CHUNK = 200_000
CHUNK_BYTES = 32 * 1024 * 1024
DEFAULT_FORMAT = "{asctime} {worker} {level} {msg}"
_ASCTIME = ("concat(formatDateTime(timestamp, '%Y-%m-%d %H:%i:%S'), ',', "
            "leftPad(toString(toUnixTimestamp64Milli(timestamp) % 1000), 3, '0'))")
PLACEHOLDERS = {
    "asctime": _ASCTIME,
    "timestamp": "toString(toUnixTimestamp64Milli(timestamp))",
    "level": "toString(level)",
    "worker": "toString(worker)",
    "msg": "msg",
}

page = log_page


def compile_format(line_format: str) -> tuple[str, dict[str, str]]:
    """(ClickHouse expression of one text line, its literal parameters), or a 400 naming
    line_format and the allowed placeholders."""
    allowed = sorted(PLACEHOLDERS)
    try:
        parsed = list(string.Formatter().parse(line_format))
    except ValueError as exc:
        raise bad_param("line_format", line_format, f"line_format: {exc}", allowed) from None
    parts: list[str] = []
    params: dict[str, str] = {}
    for literal, field, spec, conversion in parsed:
        if literal:
            name = f"lit{len(params)}"
            params[name] = literal
            parts.append(f"{{{name}:String}}")
        if field is None:
            continue
        if field not in PLACEHOLDERS:
            raise bad_param("line_format", line_format,
                            f"line_format: unknown placeholder {{{field}}}", allowed)
        if spec or conversion:
            raise bad_param("line_format", line_format,
                            f"line_format: {{{field}}} takes no conversion or format spec",
                            allowed)
        parts.append(PLACEHOLDERS[field])
    expr = f"concat({', '.join(parts)}, '')" if parts else "''"
    return expr, params


def download(store: AsyncStore, tenant: str, task: str,
             template: tuple[str, dict[str, str]] | None) -> StreamingResponse:
    """The attachment: text lines when `template` is given, else JSON lines."""
    text = template is not None
    filename = f"task_{task}.{'log' if text else 'jsonl'}"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in filename)
    return StreamingResponse(
        _chunks(store, tenant, task, template),
        media_type="text/plain; charset=utf-8" if text else "application/json-lines",
        headers={"Content-Disposition": f'attachment; filename="{safe}"'})


async def _chunks(store: AsyncStore, tenant: str, task: str,
                  template: tuple[str, dict[str, str]] | None) -> AsyncIterator[bytes]:
    db = store.database
    base = {"t": tenant, "task": task}
    scope = "tenant = {t:String} AND task = {task:String}"
    table = f"{db}.task_log_events FINAL"
    try:
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
            # the chunk ends at CHUNK lines or CHUNK_BYTES of messages, whichever comes first
            bound = await store.rows(
                f"SELECT ts, id FROM (SELECT toUnixTimestamp64Milli(timestamp) AS ts, "
                f"event_id AS id, sum(length(msg) + 64) OVER w AS cum, row_number() OVER w "
                f"AS rn FROM (SELECT timestamp, event_id, msg FROM {table} WHERE {where} "
                f"ORDER BY timestamp, event_id LIMIT {CHUNK}) WINDOW w AS (ORDER BY timestamp, "
                f"event_id ROWS UNBOUNDED PRECEDING)) WHERE cum >= {CHUNK_BYTES} OR rn = {CHUNK} "
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
    except Exception:
        log.exception("download_task_log of task %s failed mid-stream", task)
        raise
