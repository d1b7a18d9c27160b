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

from starlette.responses import StreamingResponse

from pipeline.storage.clickhouse import AsyncStore
from query_api.clearml.log_store import LINE_FIELDS, chunks, line_expression
from query_api.clearml.task_events_store import log_page
from query_api.errors import bad_param

__all__ = ["CHUNK", "CHUNK_BYTES", "DEFAULT_FORMAT", "PLACEHOLDERS", "compile_format", "download",
           "page"]

log = logging.getLogger("vitals.api")

CHUNK = 200_000
CHUNK_BYTES = 32 * 1024 * 1024
DEFAULT_FORMAT = "{asctime} {worker} {level} {msg}"
#: The placeholders a line format may use.
PLACEHOLDERS = frozenset(LINE_FIELDS)

page = log_page


def compile_format(line_format: str) -> tuple[str, dict[str, str]]:
    """(ClickHouse expression of one text line, its literal parameters), or a 400 naming
    line_format and the allowed placeholders."""
    allowed = sorted(PLACEHOLDERS)
    try:
        parsed = list(string.Formatter().parse(line_format))
    except ValueError as exc:
        raise bad_param("line_format", line_format, f"line_format: {exc}", allowed) from None
    parts: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in parsed:
        if field is not None and field not in PLACEHOLDERS:
            raise bad_param("line_format", line_format,
                            f"line_format: unknown placeholder {{{field}}}", allowed)
        if field is not None and (spec or conversion):
            raise bad_param("line_format", line_format,
                            f"line_format: {{{field}}} takes no conversion or format spec",
                            allowed)
        parts.append((literal, field))
    return line_expression(parts)


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
    try:
        async for data in chunks(store, tenant, task, template, chunk=CHUNK,
                                 chunk_bytes=CHUNK_BYTES):
            yield data
    except Exception:
        log.exception("download_task_log of task %s failed mid-stream", task)
        raise
