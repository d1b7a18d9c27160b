"""`/healthz` and `/readyz` answered by the HTTP protocol (query_api/probes.py): the same
answers as the routes, in order on a keep-alive connection, behind a request still under way,
with a body, over HTTP/1.0, and as HEAD. Raw HTTP/1.1 over a socket, so that every byte of the
answer (and the connection's fate) is what is asserted."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx
import orjson

from pipeline.cli.runtime import Runtime
from pipeline.core.settings import Settings
from pipeline.storage import keys

SLOW = b'{"query": "SELECT sum(sleepEachRow(0.5)) FROM numbers(2)", "format": "TSV"}'  # 1 s


async def _answer(reader: asyncio.StreamReader, head_only: bool = False
                  ) -> tuple[int, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    lines = head.split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
    body = b"" if head_only else await reader.readexactly(int(headers.get("content-length", 0)))
    return int(lines[0].split()[1]), headers, body


def _get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()


async def test_probes_answer_as_the_routes_in_every_case(settings: Settings) -> None:
    rt = Runtime(settings, worker=False, statsd=False)
    await rt.start()
    assert rt.store is not None and rt.api_url is not None and rt.api_app is not None
    admin = await rt.store.call(lambda st: keys.create_key(st, "default", "superadmin"))
    url = urlsplit(rt.api_url)
    try:
        # what the routes answer (the app alone, no protocol)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=rt.api_app),
                                     base_url="http://t") as app:
            routed = {p: await app.get(p) for p in ("/healthz", "/readyz")}
        assert routed["/healthz"].json() == {"status": "ok"}
        assert routed["/readyz"].status_code == 200
        assert routed["/readyz"].json()["checks"]["storage"]["state"] == "ok"

        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        # keep-alive: both probes, HEAD, a query string, then a probe with a body
        writer.write(_get("/healthz") + _get("/readyz?verbose=1") +
                     b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n" +
                     _get("/healthz", "Content-Length: 3\r\n") + b"abc")
        for path in ("/healthz", "/readyz"):
            status, headers, body = await _answer(reader)
            assert status == routed[path].status_code
            assert orjson.loads(body).keys() == routed[path].json().keys()
            assert headers["content-type"] == "application/json"
            assert headers["content-length"] == str(len(body))
            assert headers["server"] == "uvicorn" and "date" in headers
        status, headers, _ = await _answer(reader, head_only=True)  # HEAD: the length, no body
        assert (status, headers["content-length"]) == (200, str(len(b'{"status":"ok"}')))
        status, _, body = await _answer(reader)  # with a body: the routes answer it
        assert (status, body) == (200, b'{"status":"ok"}')
        # behind a request still under way the probe waits its turn (answers stay in order)
        slow = (f"POST /sql HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {admin.key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(SLOW)}\r\n\r\n"
                ).encode() + SLOW
        writer.write(slow + _get("/healthz"))
        first = await _answer(reader)
        assert (first[0], first[2]) == (200, b"0\n")
        assert (await _answer(reader))[2] == b'{"status":"ok"}'
        # Connection: close is honoured: the answer, then the end of the stream
        writer.write(_get("/healthz", "Connection: close\r\n"))
        status, headers, body = await _answer(reader)
        assert (status, headers["connection"], body) == (200, "close", b'{"status":"ok"}')
        assert await reader.read() == b""
        writer.close()

        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(b"GET /healthz HTTP/1.0\r\n\r\n")  # HTTP/1.0: answered, then closed
        status, headers, body = await _answer(reader)
        assert (status, body) == (200, b'{"status":"ok"}')
        assert await reader.read() == b""
        writer.close()

        async with httpx.AsyncClient(base_url=rt.api_url) as http:
            metrics = (await http.get("/metrics")).text
        # 6 over the socket and 1 through the app alone; 1 and 1 for /readyz
        assert 'vitals_api_request_seconds_count{route="/healthz"} 7\n' in metrics
        assert 'vitals_api_request_seconds_count{route="/readyz"} 2\n' in metrics
    finally:
        await rt.stop()
