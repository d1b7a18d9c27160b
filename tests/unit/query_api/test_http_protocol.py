"""Which answer a request head the API cannot take gets (no sockets: h11 fed bytes)."""

from __future__ import annotations

import h11
import pytest

from query_api.http_protocol import MAX_HEAD_BYTES, _Connection


def refusal(*chunks: bytes) -> int | h11.Request:
    conn = _Connection(MAX_HEAD_BYTES)
    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            event = conn.next_event()
            if isinstance(event, h11.Request):
                return event
    except h11.RemoteProtocolError:
        return conn.refusal
    raise AssertionError("neither a request nor a refusal")


BIG = MAX_HEAD_BYTES + 1


@pytest.mark.parametrize("chunks,expected", [
    ((b"GET /" + b"a" * BIG,), 414),                                          # line never ends
    ((b"GET /?" + b"a" * BIG + b" HTTP/1.1\r\nHost: x\r\n\r\n",), 414),       # whole, in one read
    ((b"GET / HTTP/1.1\r\n", b"X: " + b"b" * BIG), 431),                      # headers never end
    ((b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"b" * BIG + b"\r\n\r\n",), 431),
    ((b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Many: 1\r\n" * 2000 + b"\r\n",), 431),
    ((b"NOT HTTP AT ALL\r\n\r\n",), 400),
])
def test_refused_heads_get_414_431_or_400(chunks: tuple[bytes, ...], expected: int) -> None:
    assert refusal(*chunks) == expected


def test_a_head_within_the_limit_is_a_request() -> None:
    event = refusal(b"GET /healthz?" + b"q" * 8000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(event, h11.Request) and event.target.startswith(b"/healthz?")
