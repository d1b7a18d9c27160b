"""The probe port: `/healthz` and `/readyz` served by a process of their own.

On the API's port a probe waits for the event loop's current turn, and under a wall of
dashboards that turn is tens of milliseconds (bench/results.md). An orchestrator pointed at
`VITALS_PROBE_PORT` instead reaches this small process, which holds no interpreter lock of the
API's and answers from the probe board (query_api/probe_board.py) that the API process
publishes a few times a second: the same status, headers and body as the API port's answers,
at most `PUBLISH_EVERY_S` old.

- A board published longer than `stale_s` ago answers 503 `STALLED` on both paths (the API
  process's loop has not run its publisher for that long: stuck, or stopping), so liveness
  keeps its meaning; a board not yet published answers 503 `STARTING`.
- Other paths get 404, other methods 405, a request head past `MAX_HEAD_BYTES` 431, each as
  JSON `{error, message}`. Keep-alive, pipelining, HTTP/1.0 and `Connection: close` are
  honoured (httptools parses, as uvicorn does on the API port); a connection idle for
  `IDLE_TIMEOUT_S` (uvicorn's keep-alive timeout) is closed.
- The process exits when its parent does (checked every `PARENT_CHECK_S`, so a `kill -9` of
  the API process leaves no orphan behind) and on SIGTERM or SIGINT.

Run by `query_api.probe_port.ProbePort`; by hand:
``python -m query_api.probe_server BOARD HOST PORT PARENT_PID STALE_S [IDLE_S]``. It prints
`listening <port>` once it is bound, or `error <reason>` when it cannot bind.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httptools
import orjson

from query_api.http_answer import http_answer
from query_api.probe_board import ProbeBoard, Published

__all__ = ["IDLE_TIMEOUT_S", "MAX_HEAD_BYTES", "PARENT_CHECK_S", "PROBE_PATHS", "ProbeServer",
           "main"]

PROBE_PATHS = (b"/healthz", b"/readyz")
MAX_HEAD_BYTES = 16 * 1024
PARENT_CHECK_S = 0.5
IDLE_TIMEOUT_S = 5.0
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


def _error(status: int, code: str, message: str, **headers: str
           ) -> tuple[int, dict[str, str], bytes]:
    return status, headers, orjson.dumps({"error": code, "message": message})


class ProbeServer:
    """What the probe port answers, from `board`, at the wall-clock time `now()`."""

    def __init__(self, board: ProbeBoard, stale_s: float,
                 now: Any = time.time) -> None:
        self.board = board
        self.stale_s = stale_s
        self._now = now
        self._last: Published | None = None

    def _published(self) -> Published | None:
        if self._last is None or self.board.seq() != self._last.seq:
            self._last = self.board.read() or self._last
        return self._last

    def answer(self, method: bytes, path: bytes) -> tuple[int, dict[str, str], bytes]:
        if path not in PROBE_PATHS:
            return _error(404, "NOT_FOUND", "the probe port serves /healthz and /readyz; "
                          "the API is on its own port")
        if method not in (b"GET", b"HEAD"):
            return _error(405, "METHOD_NOT_ALLOWED", f"{path.decode()} allows GET, HEAD",
                          allow="GET, HEAD")
        published = self._published()
        if published is None:
            return _error(503, "STARTING", "the API process has not published its state yet",
                          **{"retry-after": "2"})
        age = self._now() - published.published_at
        if age > self.stale_s:
            return _error(503, "STALLED", f"the API process published its state {age:.1f} s "
                          f"ago (limit {self.stale_s:g} s): its event loop is stalled, or it "
                          f"is stopping", **{"retry-after": "2"})
        return published.answers[path.decode()]


def render(status: int, headers: dict[str, str], body: bytes, *, head_only: bool,
           keep_alive: bool) -> bytes:
    """One HTTP/1.1 answer, with the headers uvicorn sends on the API port."""
    date = email.utils.formatdate(usegmt=True).encode()
    return http_answer(b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"")),
                       [(b"date", date), (b"server", b"uvicorn"),
                        *((k.lower().encode(), v.encode()) for k, v in headers.items())],
                       body, head_only=head_only, keep_alive=keep_alive)


class _Connection(asyncio.Protocol):
    def __init__(self, server: ProbeServer, idle_s: float) -> None:
        self.server = server
        self.idle_s = idle_s
        self.idle: asyncio.TimerHandle | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.head_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle is not None:
            self.idle.cancel()

    def _arm(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        assert self.transport is not None
        self.idle = asyncio.get_running_loop().call_later(self.idle_s, self.transport.close)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self._arm()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close_with(_error(404, "NOT_FOUND", "the probe port does not upgrade"))
        except httptools.HttpParserError:
            self._close_with(_error(400, "BAD_REQUEST", "malformed HTTP request"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)

    def _count(self, n: int) -> None:
        self.head_bytes += n
        if self.head_bytes > MAX_HEAD_BYTES:
            self._close_with(_error(431, "HEAD_TOO_LARGE",
                                    f"request heads are limited to {MAX_HEAD_BYTES} bytes"))

    def on_message_complete(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        method = self.parser.get_method()
        path = httptools.parse_url(self.url).path
        keep_alive = self.parser.should_keep_alive()
        status, headers, body = self.server.answer(method, path)
        self.transport.write(render(status, headers, body, head_only=method == b"HEAD",
                                    keep_alive=keep_alive))
        if not keep_alive:
            self.transport.close()

    def _close_with(self, answer: tuple[int, dict[str, str], bytes]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(render(*answer, head_only=False, keep_alive=False))
            self.transport.close()


async def serve(board_path: Path, host: str, port: int, parent: int, stale_s: float,
                idle_s: float = IDLE_TIMEOUT_S) -> None:
    board = ProbeBoard.attach(board_path)
    server = ProbeServer(board, stale_s)
    loop = asyncio.get_running_loop()
    try:
        listener = await loop.create_server(lambda: _Connection(server, idle_s), host, port)
    except OSError as exc:
        sys.stdout.write(f"error {host}:{port}: {exc.strerror or exc}\n")
        sys.stdout.flush()
        return
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = listener.sockets[0].getsockname()[1]
    sys.stdout.write(f"listening {bound}\n")
    sys.stdout.flush()
    while not stop.is_set() and os.getppid() == parent:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PARENT_CHECK_S)
    listener.close()
    board.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (5, 6):
        sys.stderr.write("usage: python -m query_api.probe_server BOARD HOST PORT PARENT_PID "
                         "STALE_S [IDLE_S]\n")
        return 2
    board, host, port, parent, stale = args[:5]
    idle = float(args[5]) if len(args) == 6 else IDLE_TIMEOUT_S
    asyncio.run(serve(Path(board), host, int(port), int(parent), float(stale), idle))
    return 0


if __name__ == "__main__":
    sys.exit(main())
