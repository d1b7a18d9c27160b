"""The embedded engine's session registry: one client per (DSN, mode, thread), reused."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pipeline.storage.embedded import EmbeddedSessions, chdb_dir, embedded_locked, is_embedded


def test_one_session_per_dsn_mode_and_thread_reused_by_later_stores() -> None:
    opened: list[tuple[str, bool]] = []

    def open_session(dsn: str, readonly: bool) -> Any:
        opened.append((dsn, readonly))
        return object()

    sessions = EmbeddedSessions(open_session)
    rw = sessions.client("chdb:///d")
    assert sessions.client("chdb:///d") is rw
    ro = sessions.client("chdb:///d", readonly=True)
    assert ro is not rw and sessions.client("chdb:///d", readonly=True) is ro
    other: list[Any] = []
    t = threading.Thread(target=lambda: other.append(sessions.client("chdb:///d")), name="t1")
    t.start()
    t.join()
    assert other[0] is not rw
    assert opened == [("chdb:///d", False), ("chdb:///d", True), ("chdb:///d", False)]
    assert len(sessions) == 3


def test_embedded_dsn_and_its_directory(tmp_path: Path) -> None:
    assert is_embedded("chdb:///var/x?a=1") and not is_embedded("http://h:8123")
    assert chdb_dir("chdb:///var/x?a=1") == Path("/var/x")
    assert not embedded_locked(tmp_path)
