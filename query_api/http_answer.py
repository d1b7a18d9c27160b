"""One HTTP/1.1 JSON answer as bytes: what the API port's probes (`query_api/probes.py`) and the
probe port (`query_api/probe_server.py`) write. Imports nothing, so the probe process starts
without the API's modules."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["http_answer"]


def http_answer(status_line: bytes, headers: Iterable[tuple[bytes, bytes]], body: bytes, *,
                head_only: bool, keep_alive: bool) -> bytes:
    """`status_line` (with its CRLF), `headers`, then `content-length` and `content-type:
    application/json`, `connection: close` unless `keep_alive`, and `body` unless `head_only`."""
    head = [status_line]
    for name, value in [*headers, (b"content-length", str(len(body)).encode()),
                        (b"content-type", b"application/json")]:
        head += [name, b": ", value, b"\r\n"]
    if not keep_alive:
        head.append(b"connection: close\r\n")
    head.append(b"\r\n")
    if not head_only:
        head.append(body)
    return b"".join(head)
