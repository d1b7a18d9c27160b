"""`VITALS_PROBE_PORT` (query_api/probe_port.py, probe_server.py): a process of its own answers
`/healthz` and `/readyz` with the API port's answers, follows readiness as it changes, turns
503 when the API process stops publishing, and ends with the API process however it ends."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from pipeline.cli.runtime import Runtime
from pipeline.core.settings import Settings
from query_api.probe_board import ProbeBoard
from query_api.probe_port import PUBLISH_EVERY_S, ProbePort


async def _raw(url: str, data: bytes) -> bytes:
    """Everything the server sends for `data` until it closes the connection."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(data)
    out = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return out


async def test_the_probe_port_answers_as_the_api_port(settings: Settings) -> None:
    rt = Runtime(settings.with_(probe_port=0), worker=False, statsd=False)
    await rt.start()
    assert rt.api_url is not None and rt.probe_url is not None
    assert urlsplit(rt.probe_url).port != urlsplit(rt.api_url).port
    try:
        async with httpx.AsyncClient() as client:
            for path in ("/healthz", "/readyz"):
                api = await client.get(rt.api_url + path)
                probe = await client.get(rt.probe_url + path)
                assert (probe.status_code, probe.json()) == (api.status_code, api.json())
                assert probe.headers["content-type"] == "application/json"
                assert probe.headers["server"] == "uvicorn" and "date" in probe.headers
            assert (await client.get(rt.probe_url + "/readyz")).json()["status"] == "ready"
            head = await client.head(rt.probe_url + "/healthz")
            assert (head.status_code, head.headers["content-length"], head.content) == (
                200, str(len(b'{"status":"ok"}')), b"")

            # readiness as it changes: the API port at once, the probe port within a publication
            rt.health.report("agent:probe-test", "joining", "rebalancing")
            api = await client.get(rt.api_url + "/readyz")
            assert api.status_code == 503
            await asyncio.sleep(PUBLISH_EVERY_S * 2 + 0.1)
            probe = await client.get(rt.probe_url + "/readyz")
            assert (probe.status_code, probe.json(), probe.headers["retry-after"]) == (
                503, api.json(), "2")
            assert "agent:probe-test joining (rebalancing)" in probe.json()["message"]
            rt.health.forget("agent:probe-test")
            await asyncio.sleep(PUBLISH_EVERY_S * 2 + 0.1)
            assert (await client.get(rt.probe_url + "/readyz")).status_code == 200

        # keep-alive and pipelining, then `Connection: close`; HTTP/1.0 closes by default
        two = await _raw(rt.probe_url, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                                       b"GET /healthz?x=1 HTTP/1.1\r\nHost: t\r\n"
                                       b"Connection: close\r\n\r\n")
        assert two.count(b"HTTP/1.1 200 OK") == 2 and two.endswith(b'{"status":"ok"}')
        assert b"connection: close" in two.split(b"\r\n\r\n")[1]
        old = await _raw(rt.probe_url, b"GET /readyz HTTP/1.0\r\n\r\n")
        assert old.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in old
        bad = await _raw(rt.probe_url, b"NOT HTTP\r\n\r\n")
        assert bad.startswith(b"HTTP/1.1 400 Bad Request")
        assert orjson.loads(bad.split(b"\r\n\r\n", 1)[1])["error"] == "BAD_REQUEST"
        big = await _raw(rt.probe_url, b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 20000 +
                         b"\r\n\r\n")
        assert big.startswith(b"HTTP/1.1 431 ")
    finally:
        probe_port = urlsplit(rt.probe_url).port
        await rt.stop()
    assert rt.probe_url is None
    with pytest.raises(OSError):  # the probe process is gone with the runtime
        socket.create_connection(("127.0.0.1", probe_port), timeout=2).close()


class FixedProbes:
    def document(self, path: bytes, *, monitored_only: bool = True
                 ) -> tuple[int, dict[str, str], bytes] | None:
        return 200, {}, b'{"status":"ok"}'


async def test_a_stalled_loop_turns_the_probes_503_and_recovers() -> None:
    port = ProbePort(FixedProbes(), "127.0.0.1", 0, stale_s=1.0, every_s=0.1)
    url = await port.start()
    try:
        assert httpx.get(url + "/healthz").status_code == 200
        time.sleep(1.5)  # the event loop (and so the publisher) blocked past the bound
        stalled = httpx.get(url + "/healthz")
        assert (stalled.status_code, stalled.json()["error"]) == (503, "STALLED")
        assert stalled.headers["retry-after"] == "2"
        await asyncio.sleep(0.3)  # the loop runs again: the next publication recovers it
        assert httpx.get(url + "/healthz").status_code == 200
    finally:
        await port.stop()


def test_the_probe_process_ends_with_a_killed_parent(tmp_path: Path) -> None:
    board = tmp_path / "board"
    ProbeBoard.create(board).publish({"/healthz": (200, {}, b'{"status":"ok"}')}, time.time())
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import os, subprocess, sys, time\n"
         f"subprocess.Popen([sys.executable, '-m', 'query_api.probe_server', {str(board)!r}, "
         "'127.0.0.1', '0', str(os.getpid()), '10', '0.5'])\n"
         "time.sleep(120)\n"],
        stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline().decode().split()
        assert line[0] == "listening"
        port = int(line[1])
        # a keep-alive connection is answered, then closed once idle for IDLE_S (0.5 s here)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as idle:
            idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            answer = b""
            while not answer.endswith(b'{"status":"ok"}'):
                answer += idle.recv(4096)
            started = time.monotonic()
            assert idle.recv(4096) == b""  # the server closed it
            assert 0.3 < time.monotonic() - started < 3
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the probe process still listens 5 s after its parent was killed")
    finally:
        parent.kill()


async def test_a_taken_probe_port_fails_the_start_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        probe = ProbePort(FixedProbes(), "127.0.0.1", port)
        with pytest.raises(RuntimeError, match=rf"VITALS_PROBE_PORT\) did not start: "
                                               rf"127\.0\.0\.1:{port}: .*address already in use"):
            await probe.start()
