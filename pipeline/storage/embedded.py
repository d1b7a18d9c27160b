"""The embedded engine (`chdb://`): its lock probe and the process's sessions on it.

chdb runs one engine per process, on the first data path it opens (another path is refused
until the process exits), and any number of sessions (handles) on that engine, each running one
statement at a time. A session is not closed by the store that asked for it: stores come and go
(every test opens the same path many times), the engine and its sessions stay. So the sessions
belong to a registry with the engine's lifetime, the process's: `process_sessions()`.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from pathlib import Path

from pipeline.storage.ch_types import ClickHouseClient

__all__ = ["EmbeddedSessions", "chdb_dir", "embedded_locked", "is_embedded", "process_sessions"]

PREFIX = "chdb://"


def is_embedded(dsn: str) -> bool:
    return dsn.startswith(PREFIX)


def chdb_dir(dsn: str) -> Path:
    """The data directory of an embedded DSN."""
    return Path(dsn.removeprefix(PREFIX).split("?", 1)[0])


def embedded_locked(path: Path) -> bool:
    """Whether another process holds the embedded engine in the data directory `path`.

    ClickHouse takes `flock(LOCK_EX | LOCK_NB)` on `<dir>/status` for as long as it runs; probing
    that lock is exact, and spares the noise of a failed chdb start.
    """
    try:
        fd = os.open(path / "status", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases a lock we got
    return False


def _open_session(dsn: str, readonly: bool) -> ClickHouseClient:
    import clickhouse_connect

    return clickhouse_connect.get_client(dsn=dsn, settings={"readonly": 1} if readonly else None)


class EmbeddedSessions:
    """clickhouse-connect clients on the embedded engine, one per (DSN, mode, thread name),
    kept for the registry's lifetime.

    One per thread: a store's pool threads query in parallel, each on its own handle, and a later
    store on the same path reuses the handles of the thread it runs on. One per mode: the
    read-only session (`readonly=1` for good) and the read-write one never share `SET` state.
    `open_session(dsn, readonly)` makes a client; thread-safe.
    """

    def __init__(self, open_session: Callable[[str, bool], ClickHouseClient] = _open_session
                 ) -> None:
        self._open = open_session
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, bool, str], ClickHouseClient] = {}

    def client(self, dsn: str, *, readonly: bool = False) -> ClickHouseClient:
        key = (dsn, readonly, threading.current_thread().name)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._open(dsn, readonly)
            return client

    def __len__(self) -> int:
        return len(self._clients)


_PROCESS_SESSIONS = EmbeddedSessions()


def process_sessions() -> EmbeddedSessions:
    """The sessions of this process's engine; they live as long as the process (and the engine)."""
    return _PROCESS_SESSIONS
