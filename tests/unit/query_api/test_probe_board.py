"""The probe board (query_api/probe_board.py) and what the probe port answers from it
(query_api/probe_server.py), on a board file and an injected clock: no process, no socket."""

from __future__ import annotations

import struct
from pathlib import Path

import orjson
import pytest

from pipeline.core.settings import Settings, SettingsError
from query_api.probe_board import SIZE, BoardFull, NotABoard, ProbeBoard
from query_api.probe_server import ProbeServer, render

READY = (200, {}, b'{"status":"ready"}')
NOT_READY = (503, {"Retry-After": "2"}, b'{"error":"NOT_READY","message":"broker down"}')


def test_a_reader_sees_each_complete_publication(tmp_path: Path) -> None:
    writer = ProbeBoard.create(tmp_path / "board")
    reader = ProbeBoard.attach(tmp_path / "board")
    assert reader.read() is None and reader.seq() == 0  # nothing published yet
    writer.publish({"/healthz": (200, {}, b'{"status":"ok"}'), "/readyz": READY}, at=100.5)
    got = reader.read()
    assert got is not None
    assert (got.seq, got.published_at) == (2, 100.5)
    assert got.answers == {"/healthz": (200, {}, b'{"status":"ok"}'), "/readyz": READY}
    writer.publish({"/healthz": (200, {}, b'{"status":"ok"}'), "/readyz": NOT_READY}, at=101.0)
    got = reader.read()
    assert got is not None and (got.seq, got.answers["/readyz"]) == (4, NOT_READY)


def test_a_publication_being_written_is_never_read(tmp_path: Path) -> None:
    writer = ProbeBoard.create(tmp_path / "board")
    writer.publish({"/readyz": READY}, at=1.0)
    reader = ProbeBoard.attach(tmp_path / "board")
    # the writer stopped between its two sequence bumps (odd: being written)
    struct.pack_into("<Q", writer._map, 8, 3)
    assert reader.read(attempts=5) is None
    struct.pack_into("<Q", writer._map, 8, 2)
    got = reader.read(attempts=5)
    assert got is not None and got.answers["/readyz"] == READY


def test_an_oversized_publication_is_refused_and_the_last_one_stays(tmp_path: Path) -> None:
    writer = ProbeBoard.create(tmp_path / "board")
    writer.publish({"/readyz": READY}, at=1.0)
    with pytest.raises(BoardFull, match="probe answers"):
        writer.publish({"/readyz": (200, {}, b"x" * SIZE)}, at=2.0)
    got = ProbeBoard.attach(tmp_path / "board").read()
    assert got is not None and got.answers["/readyz"] == READY


def test_a_file_that_is_no_board_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other").write_bytes(b"\0" * SIZE)
    with pytest.raises(NotABoard, match="not a probe board"):
        ProbeBoard.attach(tmp_path / "other")


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_the_server_answers_the_published_probes_until_they_are_stale(tmp_path: Path) -> None:
    writer = ProbeBoard.create(tmp_path / "board")
    clock = Clock(1000.0)
    server = ProbeServer(ProbeBoard.attach(tmp_path / "board"), stale_s=10.0, now=clock)
    status, headers, body = server.answer(b"GET", b"/healthz")
    assert (status, orjson.loads(body)["error"], headers) == (503, "STARTING",
                                                             {"retry-after": "2"})
    writer.publish({"/healthz": (200, {}, b'{"status":"ok"}'), "/readyz": NOT_READY}, at=1000.0)
    assert server.answer(b"GET", b"/healthz") == (200, {}, b'{"status":"ok"}')
    assert server.answer(b"HEAD", b"/readyz") == NOT_READY
    clock.t = 1010.0  # exactly the bound: still served
    assert server.answer(b"GET", b"/healthz")[0] == 200
    clock.t = 1010.5
    for path in (b"/healthz", b"/readyz"):
        status, headers, body = server.answer(b"GET", path)
        doc = orjson.loads(body)
        assert (status, doc["error"], headers) == (503, "STALLED", {"retry-after": "2"})
        assert doc["message"].startswith("the API process published its state 10.5 s ago "
                                         "(limit 10 s)")
    writer.publish({"/healthz": (200, {}, b'{"status":"ok"}'), "/readyz": READY}, at=1010.4)
    assert server.answer(b"GET", b"/readyz") == READY  # published again: recovered


def test_other_paths_and_methods_name_what_the_port_serves(tmp_path: Path) -> None:
    ProbeBoard.create(tmp_path / "board")
    server = ProbeServer(ProbeBoard.attach(tmp_path / "board"), stale_s=10.0)
    status, _, body = server.answer(b"GET", b"/get_endpoint_stats/")
    assert (status, orjson.loads(body)) == (404, {
        "error": "NOT_FOUND",
        "message": "the probe port serves /healthz and /readyz; the API is on its own port"})
    status, headers, body = server.answer(b"POST", b"/healthz")
    assert (status, headers, orjson.loads(body)["message"]) == (
        405, {"allow": "GET, HEAD"}, "/healthz allows GET, HEAD")


def test_render_writes_the_api_ports_headers() -> None:
    raw = render(503, {"Retry-After": "2"}, b'{"a":1}', head_only=False, keep_alive=False)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 503 Service Unavailable"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers.keys() == {"date", "server", "retry-after", "content-length", "content-type",
                              "connection"}
    assert (headers["retry-after"], headers["content-length"], headers["connection"],
            headers["content-type"], body) == ("2", "7", "close", "application/json", b'{"a":1}')
    head_only = render(200, {}, b'{"a":1}', head_only=True, keep_alive=True)
    assert head_only.endswith(b"content-length: 7\r\ncontent-type: application/json\r\n\r\n")


def test_the_probe_port_setting() -> None:
    assert Settings().probe_port is None and Settings.from_env({}).probe_port is None
    assert Settings.from_env({"VITALS_PROBE_PORT": "off"}).probe_port is None
    assert Settings.from_env({"VITALS_PROBE_PORT": "0"}).probe_port == 0
    assert Settings.from_env({"VITALS_PROBE_PORT": "8081"}).probe_port == 8081
    for bad in ("http", "70000", "-1"):
        with pytest.raises(SettingsError, match="VITALS_PROBE_PORT"):
            Settings.from_env({"VITALS_PROBE_PORT": bad})
