"""Each answer leaves the API's HTTP protocol in one write, head and body together (a HEAD
answer: the head alone), in order on a keep-alive connection; a streamed answer's head goes out
with its first chunk. The protocol is fed bytes and writes to a transport that records."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from query_api.http_protocol import PROTOCOL


class Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name in ("peername", "sockname") else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def app(scope: Any, receive: Any, send: Any) -> None:
    chunks = [b"one", b"two"] if scope["path"] == "/stream" else [b"hello"]
    length = [] if len(chunks) > 1 else [(b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": length})
    for i, chunk in enumerate(chunks):
        await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": chunk,
                    "more_body": i < len(chunks) - 1})


async def answers(raw: bytes) -> Recording:
    config = uvicorn.Config(app, lifespan="off", date_header=False, server_header=False)
    config.load()
    proto = PROTOCOL(config=config, server_state=ServerState(), app_state={})
    transport = Recording()
    proto.connection_made(transport)
    proto.data_received(raw)
    for _ in range(50):
        await asyncio.sleep(0)
    proto.connection_lost(None)
    return transport


async def test_each_answer_is_one_write() -> None:
    t = await answers(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2
                      + b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
                      + b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    whole = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
    assert t.writes == [
        whole + b"hello",
        whole + b"hello",
        whole,  # HEAD: the head, written when the answer completes
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\none\r\n",
        b"3\r\ntwo\r\n0\r\n\r\n",
    ]


async def test_a_closing_answer_is_written_before_the_close() -> None:
    t = await answers(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert t.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\n"]
    assert t.closed
