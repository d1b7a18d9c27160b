"""ClickHouse access, for the embedded engine (`chdb://`) and a server (`http(s)://`) alike.

Everything goes through clickhouse-connect: one code path, one dialect. Driver exceptions are
translated here (`StorageUnavailable` for transient faults, `StorageError` for rejected SQL);
callers never import clickhouse-connect.

Concurrency: clickhouse-connect clients are synchronous. `AsyncStore` runs every call on a
dedicated pool of threads, one client per thread, so the event loop keeps serving Kafka and
HTTP and independent statements run in parallel: a server gets one connection per thread, the
embedded engine one session (chdb handle) per thread on the process's single engine.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Protocol, TypeVar

from pipeline.errors import StorageError, StorageUnavailable, StoreLocked
from pipeline.native import NativeBlock

__all__ = ["INSERT_SETTINGS", "AsyncStore", "ClickHouseStore", "Store", "migrate"]

T = TypeVar("T")

#: Settings sent with every insert into a table, by table name (others: none).
#:
#: `requests_raw` is what the worker writes most, and each insert also feeds the three rollup
#: views (006_request_rollup_views.sql) and through them the row counters (007).
#: - `optimize_on_insert = 0`: a ReplacingMergeTree otherwise runs its merge algorithm over
#:   every inserted block to drop repeated keys within it. A worker batch never holds a source
#:   key (src_partition, src_offset, src_index) twice, and repeats across inserts are left to
#:   merges and FINAL either way, so the pass only costs CPU: ~11 % of a 133k-row insert with
#:   its views here (bench/results.md, 2026-12-01).
#: - `parallel_view_processing = 1`: the views are fed on parallel threads instead of one after
#:   the other; same CPU, ~25 % less wall time per insert, so the insert of batch N overlaps
#:   less with the build of batch N+1 on a 2-core machine.
INSERT_SETTINGS: dict[str, dict[str, Any]] = {
    "requests_raw": {"optimize_on_insert": 0, "parallel_view_processing": 1},
}

_TRANSIENT_CODES = {159, 164 + 10_000, 202, 209, 210, 241, 242, 252, 425, 999, 1000}
_CODE_RE = re.compile(r"Code: (\d+)")


class Store(Protocol):
    """What agents and routes need from ClickHouse."""

    database: str

    def insert(self, table: str, columns: Sequence[Sequence[Any]] | NativeBlock,
               names: Sequence[str]) -> None: ...

    def rows(self, sql: str, params: dict[str, Any] | None = None,
             settings: dict[str, Any] | None = None) -> list[tuple[Any, ...]]: ...

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None: ...

    def raw(self, sql: str, fmt: str, params: dict[str, Any] | None = None,
            settings: dict[str, Any] | None = None) -> bytes: ...

    def readonly_raw(self, sql: str, fmt: str) -> bytes: ...


def _translate(exc: Exception) -> StorageError:
    text = str(exc)
    m = _CODE_RE.search(text)
    code = int(m.group(1)) if m else None
    lowered = text.lower()
    if "cannot lock file" in lowered or "another server instance" in lowered:
        return StoreLocked(f"embedded ClickHouse data dir is in use by another process: {text}")
    if (code is None or code in _TRANSIENT_CODES or "connection" in lowered
            or "timed out" in lowered):
        return StorageUnavailable(text)
    return StorageError(text)


class ClickHouseStore:
    """A clickhouse-connect client bound to one database; thread-confined (see AsyncStore)."""

    _chdb_lock = threading.Lock()
    _chdb_clients: ClassVar[dict[str, Any]] = {}

    def __init__(self, dsn: str, database: str) -> None:
        self.dsn = dsn
        self.database = database
        self._client = self._connect(dsn)
        self._readonly_client: Any = None

    @classmethod
    def _connect(cls, dsn: str, *, readonly: bool = False) -> Any:
        try:
            import clickhouse_connect

            if dsn.startswith("chdb://"):
                # One engine per process, any number of sessions (handles) on it; each handle
                # runs one statement at a time. One client per (path, mode, thread name): the
                # store's pool threads query in parallel, SET state never crosses modes, and
                # the handles are reused by later stores on the same path.
                with cls._chdb_lock:
                    mode = "ro" if readonly else "rw"
                    key = f"{dsn}#{mode}#{threading.current_thread().name}"
                    client = cls._chdb_clients.get(key)
                    if client is None:
                        client = clickhouse_connect.get_client(
                            dsn=dsn, settings={"readonly": 1} if readonly else None)
                        cls._chdb_clients[key] = client
                    return client
            return clickhouse_connect.get_client(dsn=dsn, compress=False)
        except Exception as exc:  # driver and chdb raise assorted types
            raise _translate(exc) from exc

    def insert(self, table: str, columns: Sequence[Sequence[Any]] | NativeBlock,
               names: Sequence[str]) -> None:
        """Insert columns (lists, in `names` order), or a block already encoded in ClickHouse's
        Native format for those names (`pipeline.native`)."""
        settings = INSERT_SETTINGS.get(table)
        if isinstance(columns, NativeBlock):
            if columns.rows:
                try:
                    self._client.raw_insert(f"{self.database}.{table}", list(names),
                                            columns.data, settings=settings, fmt="Native")
                except Exception as exc:
                    raise _translate(exc) from exc
            return
        if not columns or not len(columns[0]):
            return
        try:
            self._client.insert(
                f"{self.database}.{table}", columns, column_names=list(names),
                column_oriented=True, settings=settings,
            )
        except Exception as exc:
            raise _translate(exc) from exc

    def rows(self, sql: str, params: dict[str, Any] | None = None,
             settings: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        try:
            result = self._client.query(sql, parameters=params or {}, settings=settings or {})
            return list(result.result_rows)
        except Exception as exc:
            raise _translate(exc) from exc

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        try:
            self._client.command(sql, parameters=params or {})
        except Exception as exc:
            raise _translate(exc) from exc

    def raw(self, sql: str, fmt: str, params: dict[str, Any] | None = None,
            settings: dict[str, Any] | None = None) -> bytes:
        try:
            data: bytes = self._client.raw_query(
                sql, parameters=params or {}, settings=settings or {}, fmt=fmt
            )
            return data
        except Exception as exc:
            raise _translate(exc) from exc


    def readonly_raw(self, sql: str, fmt: str) -> bytes:
        """Run analyst SQL with `readonly=1`, output in ClickHouse format `fmt`; unqualified
        table names resolve in this store's database.

        The embedded engine applies per-call settings with SET and restores them afterwards,
        which readonly mode itself forbids: the session would stay read-only. So the embedded
        engine gets a second session that is read-only for good; a server takes the setting
        per query. Clients are confined to their thread, so pointing one at this database for
        the call cannot leak into another thread's queries.
        """
        if not self.dsn.startswith("chdb://"):
            previous, self._client.database = self._client.database, self.database
            try:
                return self.raw(sql, fmt, settings={"readonly": 1})
            finally:
                self._client.database = previous
        if self._readonly_client is None:
            self._readonly_client = self._connect(self.dsn, readonly=True)
        self._readonly_client.database = self.database
        try:
            data: bytes = self._readonly_client.raw_query(sql, fmt=fmt)
            return data
        except Exception as exc:
            raise _translate(exc) from exc


class AsyncStore:
    """Runs `Store` calls off the event loop; one thread for chdb, a pool for a server."""

    def __init__(self, factory: Callable[[], Store], database: str, *, threads: int = 1) -> None:
        self._factory = factory
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="clickhouse")
        self.database = database

    @classmethod
    def open(cls, dsn: str, database: str) -> AsyncStore:
        """A store for `dsn`; fails fast (StorageUnavailable/StoreLocked) if it cannot connect."""
        threads = 4
        store = cls(lambda: ClickHouseStore(dsn, database), database, threads=threads)
        store._pool.submit(store._store).result()
        threading.Thread(target=_warm_driver, name="clickhouse-warm", daemon=True).start()
        return store

    def _store(self) -> Store:
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            store = self._factory()
            self._local.store = store
        return store

    async def call(self, fn: Callable[[Store], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._store()))

    async def insert(self, table: str, columns: Sequence[Sequence[Any]] | NativeBlock,
                     names: Sequence[str]) -> None:
        await self.call(lambda s: s.insert(table, columns, names))

    async def rows(self, sql: str, params: dict[str, Any] | None = None,
                   settings: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return await self.call(lambda s: s.rows(sql, params, settings))

    async def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        await self.call(lambda s: s.command(sql, params))

    async def raw(self, sql: str, fmt: str, params: dict[str, Any] | None = None,
                  settings: dict[str, Any] | None = None) -> bytes:
        return await self.call(lambda s: s.raw(sql, fmt, params, settings))

    async def readonly_raw(self, sql: str, fmt: str) -> bytes:
        return await self.call(lambda s: s.readonly_raw(sql, fmt))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _warm_driver() -> None:
    """clickhouse-connect imports numpy and pandas lazily, on the first column insert (it checks
    for DataFrames): about half a second holding the GIL. Done in the background right after the
    store opens, while the worker joins its consumer group, it stays off the first batch."""
    from clickhouse_connect.driver import options

    for name in ("np", "pd"):
        getattr(options, name)


def migrate(store: Store, *, raw_ttl_days: int = 30, rollup_ttl_days: int = 400,
            progress: Callable[[str], None] | None = None) -> list[str]:
    """Apply every migration in `schemas/clickhouse/` (idempotent DDL); return the file names.

    Retention is checked on every run and changed (`MODIFY TTL`) where it differs, so changing
    VITALS_RETENTION_DAYS and re-running migrate takes effect; an unchanged TTL is left alone (on
    a server, MODIFY TTL rewrites the parts that hold data).
    """
    from schemas import migration_files

    db = store.database
    store.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    applied = []
    for name, text in migration_files():
        sql = (text.replace("{db}", db).replace("{raw_ttl_days}", str(raw_ttl_days))
               .replace("{rollup_ttl_days}", str(rollup_ttl_days)))
        for statement in _statements(sql):
            store.command(statement)
        applied.append(name)
        if progress:
            progress(f"migration {name} applied")
    engines = dict(store.rows("SELECT name, engine_full FROM system.tables WHERE database = "
                              "{db:String}", {"db": db}))
    for table, column, days in (
        ("requests_raw", "toDateTime(ts)", raw_ttl_days),
        ("heartbeats_raw", "toDateTime(ts)", raw_ttl_days),
        ("requests_1s", "bucket", raw_ttl_days),
        ("requests_1m", "bucket", rollup_ttl_days),
        ("requests_1h", "bucket", rollup_ttl_days),
        ("metrics_1s", "bucket", raw_ttl_days),
        ("job_tasks", "toDateTime(ts)", rollup_ttl_days),
        ("job_nodes", "toDateTime(ts)", rollup_ttl_days),
        ("task_metric_events", "toDateTime(timestamp)", raw_ttl_days),
        ("task_log_events", "toDateTime(timestamp)", raw_ttl_days),
        ("requests_1m_merged", "bucket", rollup_ttl_days),
        ("requests_1h_merged", "bucket", rollup_ttl_days),
        ("requests_1m_rows", "bucket", rollup_ttl_days),
        ("requests_1h_rows", "bucket", rollup_ttl_days),
    ):
        if f"TTL {column} + toIntervalDay({days})" not in engines.get(table, ""):
            store.command(f"ALTER TABLE {db}.{table} MODIFY TTL {column} + INTERVAL {days} DAY")
    return applied


def _statements(sql: str) -> list[str]:
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
