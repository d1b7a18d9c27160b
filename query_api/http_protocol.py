"""The API's HTTP/1.1 protocol: uvicorn's httptools protocol (or its h11 one where httptools is
not installed) with answers for requests it cannot take.

uvicorn answers every request its parser refuses with a plain-text 400 and closes the socket at
once; with the client's bytes still unread the kernel then sends a reset, and the client often
sees only that. `ApiHttpToolsProtocol` and `ApiH11Protocol` instead answer, in the API's JSON
error shape:

- 414 URI_TOO_LONG when the request line alone outgrows `MAX_HEAD_BYTES`;
- 431 REQUEST_HEADER_FIELDS_TOO_LARGE when the request head (line + headers) does;
- 400 BAD_REQUEST for any other request h11 cannot parse;

then shuts its side of the connection (FIN after the answer) and reads and discards what the
client still sends (at most `DRAIN_BYTES`, at most `DRAIN_S`) before closing, so the answer is
read rather than reset away.

httptools (a C parser) costs the event loop ~0.06 ms per request against h11's ~0.18 ms
(bench/results.md, 2026-12-02), a third of the API's CPU per request; `PROTOCOL` is the one in use.
`serving(probes)` binds it to the `Probes` it answers in its parser callback (`/healthz`,
`/readyz`: query_api/probes.py).
"""

from __future__ import annotations

from typing import Any

import h11
import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol

from pipeline.core.errors import VitalsError
from query_api.probes import Probes

__all__ = ["DRAIN_BYTES", "DRAIN_S", "MAX_HEAD_BYTES", "PROTOCOL", "ApiH11Protocol", "serving"]

MAX_HEAD_BYTES = 16 * 1024
DRAIN_BYTES = 1 << 20
DRAIN_S = 2.0

_ANSWERS = {
    400: ("BAD_REQUEST", "the request is not valid HTTP/1.1"),
    414: ("URI_TOO_LONG", f"the request line exceeds {MAX_HEAD_BYTES} bytes"),
    431: ("REQUEST_HEADER_FIELDS_TOO_LARGE",
          f"the request line and headers exceed {MAX_HEAD_BYTES} bytes"),
}


class _Connection(h11.Connection):
    """h11's server connection, refusing request heads above `max_head` and remembering which
    answer a refused head deserves.

    h11 bounds only a head that is still incomplete; a whole head that arrives in one read
    (up to the transport's read size) is checked here, from the parsed request."""

    def __init__(self, max_head: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_head)
        self.max_head = max_head
        self.refusal = 400
        self._line_done = False

    def receive_data(self, data: bytes) -> None:
        if self.their_state is h11.IDLE and not self._line_done:
            self._line_done = b"\n" in data
        super().receive_data(data)

    def next_event(self) -> Any:
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            hint = exc.error_status_hint
            self.refusal = 414 if hint == 431 and not self._line_done else hint
            if self.refusal not in _ANSWERS:
                self.refusal = 400
            raise
        if isinstance(event, h11.Request):
            self._line_done = False  # the next head on this connection starts afresh
            line = len(event.method) + len(event.target) + 11  # "M T HTTP/1.1\r\n"
            head = line + sum(len(k) + len(v) + 4 for k, v in event.headers) + 2
            if line > self.max_head or head > self.max_head:
                self.refusal = 414 if line > self.max_head else 431
                raise h11.RemoteProtocolError("request head too large",
                                              error_status_hint=self.refusal)
        return event


class _Drain:
    """The refusal's last step, shared by both protocols: answer, then read and drop what the
    client still sends (at most `DRAIN_BYTES`, at most `DRAIN_S`) before closing."""

    transport: Any
    loop: Any
    _drained: int | None = None  # None: not refused; else bytes dropped since the answer

    def _dropped(self, data: bytes) -> bool:
        """True when `data` arrived after the answer (and was dropped)."""
        if self._drained is None:
            return False
        self._drained += len(data)
        if self._drained > DRAIN_BYTES:
            self.transport.close()
        return True

    def _answer_then_close(self, raw: bytes) -> None:
        self.transport.write(raw)
        self._drained = 0
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(DRAIN_S, self.transport.close)


class ApiH11Protocol(_Drain, H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _Connection(self.config.h11_max_incomplete_event_size or MAX_HEAD_BYTES)

    def data_received(self, data: bytes) -> None:
        if not self._dropped(data):
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        conn = self.conn
        status = conn.refusal if isinstance(conn, _Connection) else 400
        body = _answer(status)
        headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                   (b"content-length", str(len(body)).encode())]
        try:
            out = conn.send(h11.Response(status_code=status, headers=headers))
            out = (out or b"") + (conn.send(h11.Data(data=body)) or b"")
            out += conn.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:  # a response was already under way: just close
            self.transport.close()
            return
        self._answer_then_close(out)


def _answer(status: int) -> bytes:
    code, message = _ANSWERS[status]
    doc: dict[str, Any] = {"error": code, "message": message}
    if status != 400:
        doc["details"] = {"limit": MAX_HEAD_BYTES}
    return orjson.dumps(doc)


class _HeadTooLarge(VitalsError):
    """Raised from a parser callback (httptools re-raises it as HttpParserCallbackError)."""


try:
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is a dependency; h11 is the fallback
    PROTOCOL: type = ApiH11Protocol
else:
    class ApiHttpToolsProtocol(_Drain, HttpToolsProtocol):
        """Heads are bounded like `_Connection` bounds them: a complete head is measured in
        `on_headers_complete`; an incomplete one by the bytes received since it began."""

        #: set by `serving`: the probes this protocol answers itself
        probes: Probes | None = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_head = True
            self._head_bytes = 0
            self._line_done = False
            self._refusal = 400
            self._probe_answered = False

        def data_received(self, data: bytes) -> None:
            if self._dropped(data):
                return
            self._unset_keepalive_if_required()
            if self._in_head:
                self._head_bytes += len(data)
                self._line_done = self._line_done or b"\n" in data
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:  # as uvicorn's own protocol does
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return
            except httptools.HttpParserError:
                self.send_400_response("")
                return
            if self._in_head and self._head_bytes > MAX_HEAD_BYTES:
                self._refusal = 431 if self._line_done else 414
                self.send_400_response("")

        def on_headers_complete(self) -> None:
            method = self.parser.get_method()
            line = len(method) + len(self.url) + 11  # "M T HTTP/1.1\r\n"
            head = line + sum(len(k) + len(v) + 4 for k, v in self.headers) + 2
            if line > MAX_HEAD_BYTES or head > MAX_HEAD_BYTES:
                self._refusal = 414 if line > MAX_HEAD_BYTES else 431
                raise _HeadTooLarge
            self._in_head = False
            if self.probes is not None and self._answer_probe(method):
                return
            super().on_headers_complete()
            cycle = self.pipeline[0][0] if self.pipeline else self.cycle
            if cycle is not None:  # the cycle takes any object with the transport's methods
                one: Any = _OneWrite(self.transport, cycle)
                cycle.transport, cycle.on_response = one, one.completed

        def _answer_probe(self, method: bytes) -> bool:
            """Answer a probe here (query_api/probes.py); False when the routes answer it."""
            cycle = self.cycle
            if (cycle is not None and not cycle.response_complete) or self.pipeline \
                    or any(k in _BODY_HEADERS for k, _ in self.headers):
                return False
            keep_alive = self.parser.get_http_version() != "1.0" \
                and self.parser.should_keep_alive()
            assert self.probes is not None
            raw = self.probes.answer(method, self.url, self.server_state.default_headers,
                                     keep_alive)
            if raw is None:
                return False
            self._probe_answered = True
            self.transport.write(raw)
            if not keep_alive:
                self.transport.close()
            self.on_response_complete()
            return True

        def on_body(self, body: bytes) -> None:
            if not self._probe_answered:
                super().on_body(body)

        def on_message_complete(self) -> None:
            self._in_head, self._head_bytes, self._line_done = True, 0, False
            if self._probe_answered:
                self._probe_answered = False
                return
            super().on_message_complete()

        def send_400_response(self, msg: str) -> None:
            if self._drained is not None:
                return
            status = self._refusal
            body = _answer(status)
            self._answer_then_close(
                f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/json\r\n"
                f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body)

    PROTOCOL = ApiHttpToolsProtocol

_BODY_HEADERS = (b"content-length", b"transfer-encoding")


class _OneWrite:
    """The transport as one answer's cycle sees it. uvicorn writes an answer's head when the
    app starts the answer and its body when the app sends it: two writes, two system calls and
    two TCP segments for every answer. This holds the head (the cycle's first write once its
    answer has started) and writes it with the first body bytes, in one write; an answer that
    completes without body bytes (HEAD) and a close write what it holds first. Everything else
    is the transport's."""

    __slots__ = ("_cycle", "_held", "_on_response", "_transport")

    def __init__(self, transport: Any, cycle: Any) -> None:
        self._transport = transport
        self._cycle = cycle
        self._on_response = cycle.on_response
        self._held: bytes | None = None

    def completed(self) -> None:
        """The cycle's `on_response`: the answer is complete."""
        self._flush()
        self._on_response()

    def _flush(self) -> None:
        if self._held:
            self._transport.write(self._held)
            self._held = b""

    def write(self, data: bytes) -> None:
        if self._held is None and self._cycle.response_started:
            self._held = data  # the head: `send` writes it right after marking the start
            return
        if self._held:
            data, self._held = self._held + data, b""
        self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def serving(probes: Probes) -> type:
    """The protocol class of an API server that answers `probes` itself (the httptools one;
    h11 leaves them to the routes)."""
    return type(PROTOCOL.__name__, (PROTOCOL,), {"probes": probes})

_REASONS = {400: "Bad Request", 414: "URI Too Long", 431: "Request Header Fields Too Large"}
