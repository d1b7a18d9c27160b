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
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar, cast

from clickhouse_connect.driver import exceptions as dbx

from pipeline.core.errors import (
    StorageError,
    StorageFault,
    StorageRefused,
    StorageUnavailable,
    StoreLocked,
)
from pipeline.storage.ch_types import ClickHouseClient
from pipeline.storage.ddl import render, statements
from pipeline.storage.embedded import (
    EmbeddedSessions,
    chdb_dir,
    embedded_locked,
    is_embedded,
    process_sessions,
)
from pipeline.storage.native import NativeBlock
from pipeline.storage.retention import TTL_TABLES, Retention

__all__ = ["INSERT_SETTINGS", "TRANSIENT_CODES", "AsyncStore", "ClickHouseStore", "Store",
           "migrate", "translate"]

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

#: ClickHouse error codes that mean "not now" rather than "not this": retried with backoff.
#: TIMEOUT_EXCEEDED, TOO_MANY_SIMULTANEOUS_QUERIES, SOCKET_TIMEOUT, NETWORK_ERROR,
#: CANNOT_ALLOCATE_MEMORY, MEMORY_LIMIT_EXCEEDED, TABLE_IS_READ_ONLY (replica without Keeper),
#: NOT_ENOUGH_SPACE, TOO_MANY_PARTS, ABORTED, TOO_FEW_LIVE_REPLICAS, UNKNOWN_STATUS_OF_INSERT,
#: QUERY_WAS_CANCELLED, SYSTEM_ERROR, KEEPER_EXCEPTION, POCO_EXCEPTION, ALL_CONNECTION_TRIES_FAILED.
TRANSIENT_CODES = frozenset({159, 202, 209, 210, 173, 241, 242, 243, 252, 236, 285, 319, 394, 425,
                             999, 1000, 279})

_DRIVER_FAULTS = (dbx.ProgrammingError, dbx.NotSupportedError, dbx.InterfaceError,
                  dbx.InternalError)


def translate(exc: BaseException) -> StorageError:
    """The Vitals error for a driver exception, by its type (and ClickHouse's error code, a
    structured field of the driver's exceptions); never by its text.

    - `OperationalError` (network, a retried HTTP failure), `OSError` (sockets, timeouts) and a
      `DatabaseError` with a transient code, or with no code at all (a proxy's 5xx; a refusal
      from ClickHouse always carries one) → `StorageUnavailable`.
    - driver misuse or gaps (`ProgrammingError`, `NotSupportedError`, `InterfaceError`,
      `InternalError`), anything else → `StorageFault`.
    - any other `DatabaseError` (incl. `DataError`, `IntegrityError`) → `StorageRefused`.
    `tests/unit/pipeline/storage/test_storage_errors.py` holds every exception class of the driver
    to this map.
    """
    text = str(exc)[:4000]
    code = getattr(exc, "code", None)
    name = getattr(exc, "name", None)
    code = code if isinstance(code, int) else None
    name = name if isinstance(name, str) else None
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, dbx.OperationalError | OSError):
        return StorageUnavailable(text, code=code, name=name)
    if isinstance(exc, _DRIVER_FAULTS):
        return StorageFault(f"{type(exc).__name__}: {text}", code=code, name=name)
    if isinstance(exc, dbx.DatabaseError):
        if code is None or code in TRANSIENT_CODES:
            return StorageUnavailable(text, code=code, name=name)
        return StorageRefused(text, code=code, name=name)
    return StorageFault(f"{type(exc).__name__}: {text}", code=code, name=name)


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


class ClickHouseStore:
    """A clickhouse-connect client bound to one database; thread-confined (see AsyncStore).

    On the embedded engine the client is a session of `sessions` (default: the process's,
    `pipeline.storage.embedded.process_sessions`), which outlives the store."""

    def __init__(self, dsn: str, database: str, *,
                 sessions: EmbeddedSessions | None = None) -> None:
        self.dsn = dsn
        self.database = database
        # the embedded engine's sessions outlive this store (see pipeline.storage.embedded)
        self._sessions = sessions if sessions is not None else process_sessions()
        self._client = self._connect()
        self._readonly_client: ClickHouseClient | None = None

    def _connect(self, *, readonly: bool = False) -> ClickHouseClient:
        try:
            if is_embedded(self.dsn):
                return self._sessions.client(self.dsn, readonly=readonly)
            import clickhouse_connect

            return clickhouse_connect.get_client(dsn=self.dsn, compress=False)
        except Exception as exc:
            if is_embedded(self.dsn) and embedded_locked(chdb_dir(self.dsn)):
                raise StoreLocked(f"the embedded ClickHouse in {chdb_dir(self.dsn)} is in use by "
                                  "another process") from exc
            raise translate(exc) from exc

    def insert(self, table: str, columns: Sequence[Sequence[Any]] | NativeBlock,
               names: Sequence[str]) -> None:
        """Insert columns (lists, in `names` order), or a block already encoded in ClickHouse's
        Native format for those names (`pipeline.storage.native`)."""
        settings = INSERT_SETTINGS.get(table)
        if isinstance(columns, NativeBlock):
            if columns.rows:
                try:
                    self._client.raw_insert(f"{self.database}.{table}", list(names),
                                            columns.data, settings=settings, fmt="Native")
                except Exception as exc:
                    raise translate(exc) from exc
            return
        if not columns or not len(columns[0]):
            return
        try:
            self._client.insert(
                f"{self.database}.{table}", columns, column_names=list(names),
                column_oriented=True, settings=settings,
            )
        except Exception as exc:
            raise translate(exc) from exc

    def rows(self, sql: str, params: dict[str, Any] | None = None,
             settings: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        try:
            result = self._client.query(sql, parameters=params or {}, settings=settings or {})
            # the driver declares rows as sequences; it builds tuples (zip of the columns)
            return cast("list[tuple[Any, ...]]", list(result.result_rows))
        except Exception as exc:
            raise translate(exc) from exc

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        try:
            self._client.command(sql, parameters=params or {})
        except Exception as exc:
            raise translate(exc) from exc

    def raw(self, sql: str, fmt: str, params: dict[str, Any] | None = None,
            settings: dict[str, Any] | None = None) -> bytes:
        try:
            data: bytes = self._client.raw_query(
                sql, parameters=params or {}, settings=settings or {}, fmt=fmt
            )
            return data
        except Exception as exc:
            raise translate(exc) from exc


    def readonly_raw(self, sql: str, fmt: str) -> bytes:
        """Run analyst SQL with `readonly=1`, output in ClickHouse format `fmt`; unqualified
        table names resolve in this store's database.

        The embedded engine applies per-call settings with SET and restores them afterwards,
        which readonly mode itself forbids: the session would stay read-only. So the embedded
        engine gets a second session that is read-only for good; a server takes the setting
        per query. Clients are confined to their thread, so pointing one at this database for
        the call cannot leak into another thread's queries.
        """
        if not is_embedded(self.dsn):
            previous, self._client.database = self._client.database, self.database
            try:
                return self.raw(sql, fmt, settings={"readonly": 1})
            finally:
                self._client.database = previous
        if self._readonly_client is None:
            self._readonly_client = self._connect(readonly=True)
        self._readonly_client.database = self.database
        try:
            data: bytes = self._readonly_client.raw_query(sql, fmt=fmt)
            return data
        except Exception as exc:
            raise translate(exc) from exc


class AsyncStore:
    """Runs `Store` calls off the event loop, on a pool of threads (one engine session or
    server connection each; the embedded engine releases the GIL while a query runs).
    `probe()` runs `SELECT 1` on a lane of its own, so readiness never waits behind queued
    queries."""

    def __init__(self, factory: Callable[[], Store], database: str, *, threads: int = 1) -> None:
        self._factory = factory
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="clickhouse")
        self._probe_pool = ThreadPoolExecutor(max_workers=1,
                                              thread_name_prefix="clickhouse-probe")
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

    async def probe(self) -> None:
        """`SELECT 1` on the probe lane (its own thread and session)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._probe_pool, lambda: self._store().rows("SELECT 1"))

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
        self._probe_pool.shutdown(wait=True)


def _warm_driver() -> None:
    """clickhouse-connect imports numpy and pandas lazily, on the first column insert (it checks
    for DataFrames): about half a second holding the GIL. Done in the background right after the
    store opens, while the worker joins its consumer group, it stays off the first batch."""
    from clickhouse_connect.driver import options

    for name in ("np", "pd"):
        getattr(options, name)


def migrate(store: Store, *, retention: Retention | None = None,
            progress: Callable[[str], None] | None = None) -> list[str]:
    """Apply every migration in `schemas/clickhouse/` (idempotent DDL); return the file names.

    A new table gets the TTL of its data family in `retention` (default: the defaults of
    `pipeline.storage.retention.Retention`; placeholder `{ttl:<table>}` in the DDL, the others in
    `pipeline.storage.ddl`). Then the TTL of every table in
    `pipeline.storage.retention.TTL_TABLES` is checked and changed where it differs:
    `MODIFY TTL`, or `REMOVE TTL` for a family kept until deleted. So changing a
    `VITALS_RETENTION_*_DAYS` setting and re-running migrate takes effect; an unchanged TTL is
    left alone (on a server, MODIFY TTL rewrites the parts that hold data).
    """
    from schemas import migration_files

    keep = retention or Retention()
    db = store.database
    store.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    ttl: dict[str, str] = {}  # table → the TTL clause a new table gets
    for table, column, family in TTL_TABLES:
        days = keep.days(family)
        ttl[table] = "" if days is None else f"TTL {column} + INTERVAL {days} DAY"
    applied = []
    for name, text in migration_files():
        for statement in statements(text):
            store.command(render(statement, db, ttl))
        applied.append(name)
        if progress:
            progress(f"migration {name} applied")
    engines = dict(store.rows("SELECT name, engine_full FROM system.tables WHERE database = "
                              "{db:String}", {"db": db}))
    for table, column, family in TTL_TABLES:
        engine, days = engines.get(table, ""), keep.days(family)
        if days is None:
            if " TTL " in engine:
                store.command(f"ALTER TABLE {db}.{table} REMOVE TTL")
        elif f"TTL {column} + toIntervalDay({days})" not in engine:
            store.command(f"ALTER TABLE {db}.{table} MODIFY TTL {column} + INTERVAL {days} DAY")
    return applied

