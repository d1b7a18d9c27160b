"""Turn decoded events into ClickHouse rows. Pure.

Every row carries its Kafka source position, and a message's rows depend only on the message's
content and position. A redelivered message therefore yields identical rows with identical keys,
which the ReplacingMergeTree tables collapse: counts stay exact under redelivery (see
schemas/clickhouse/001_requests_heartbeats.sql).

Request events become `requests_raw` rows only. Their rollups, tumbling buckets of 1 s, 1 min
and 1 h per (tenant, endpoint, autogroup, message), are computed by ClickHouse from each raw
insert (materialized views, schemas/clickhouse/006_request_rollup_views.sql), outside the
Python interpreter. A bucket `b` covers event times [b, b + width).
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from msgspec import UNSET

from pipeline.storage.native import NativeBlock, NativeColumns, StringEncoder, string_bytes
from pipeline.storage.rollup import ROLLUP_FIELDS

__all__ = ["REQUESTS_RAW_TYPES", "ROLLUP_FIELDS", "TABLE_COLUMNS", "Checkpoint", "RegistryCache",
           "SinkBatch",
           "Table", "classify"]

_ROLLUP_KEY = ("tenant", "endpoint_id", "autogroup_id", "bucket", "src_partition", "src_offset")

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "requests_raw": (
        "tenant", "endpoint_id", "autogroup_id", "worker_id", "ts", "event_id", "status",
        "success", "error_kind", "latency_ms", "queue_ms", "work_units", "tokens_in",
        "tokens_out", "cold_start", "cold_start_ms", "gpu_seconds", "bytes_out", "bytes_in",
        "cache", "src_partition", "src_offset", "src_index",
    ),
    "heartbeats_raw": (
        "tenant", "endpoint_id", "autogroup_id", "worker_id", "ts", "loadtime", "cur_load",
        "new_load", "rej_load", "max_perf", "cur_perf", "cur_capacity", "max_capacity",
        "num_requests_working", "num_requests_recieved", "error_msg", "gpu_util",
        "gpu_mem_util", "cpu_util", "gpu_temp_c", "gpu_mem_total_bytes", "src_partition",
        "src_offset", "src_index",
    ),
    "endpoints": ("tenant", "endpoint_id", "endpoint_name", "last_seen"),
    "autogroups": ("tenant", "autogroup_id", "endpoint_id", "last_seen"),
    "dead_letters": ("topic", "src_partition", "src_offset", "src_index", "reason", "payload"),
}

#: ClickHouse types of `requests_raw` (schemas/clickhouse/001_requests_heartbeats.sql), the
#: Native block's column types; tests/integration/storage/test_native_block.py compares them
#: with the table.
REQUESTS_RAW_TYPES: tuple[str, ...] = (
    "LowCardinality(String)", "UInt64", "UInt64", "UInt64", "DateTime64(3, 'UTC')", "String",
    "UInt16", "Bool", "LowCardinality(String)", "Float64", "Float64", "Float64", "UInt32",
    "UInt32", "Bool", "Float64", "Float64", "UInt64", "UInt64", "LowCardinality(String)",
    "UInt16", "UInt64", "UInt32",
)

#: (table, column names, columns as lists, or an encoded Native block) to insert.
Table = tuple[str, tuple[str, ...], list[list[Any]] | NativeBlock]

#: (row counts per table, `requests_raw` buffer mark, events, endpoint registry, autogroup
#: registry) at a point in time.
Checkpoint = tuple[dict[str, int], tuple[int, list[int]], int, dict[tuple[str, int, str], int],
                   dict[tuple[str, int, int], int]]

def _latest(keys: Iterable[Any], ts: list[int], in_order: bool) -> dict[Any, int]:
    """The latest time per key of events given as parallel `keys` and `ts`. `in_order`: `ts`
    never decreases, so each key's last time is its latest."""
    if in_order:
        return dict(zip(keys, ts, strict=True))
    latest: dict[Any, int] = {}
    for key, at in zip(keys, ts, strict=True):
        if latest.get(key, -1) < at:
            latest[key] = at
    return latest


def _merge_latest(registry: dict[Any, int], seen: dict[Any, int]) -> None:
    for key, at in seen.items():
        if registry.get(key, -1) < at:
            registry[key] = at


def classify(status: int, error_kind: str) -> str:
    """Effective failure class: '' for success, else client/server/timeout/resource_exhausted/other.

    A request succeeds when its status is below 400 and it names no error kind.
    """
    if error_kind:
        return error_kind
    if status < 400:
        return ""
    if status < 500:
        return "client"
    return "server"


EndpointKey = tuple[str, int, str]      # (tenant, endpoint_id, endpoint_name)
AutogroupKey = tuple[str, int, int]     # (tenant, autogroup_id, endpoint_id)


class RegistryCache:
    """The registry rows (`endpoints`, `autogroups`) this process has written, so that a batch
    writes a registry row only when it tells ClickHouse something new.

    Every batch used to rewrite a row per key it saw, with the batch's newest event time as
    `last_seen`: two inserts of ~15 ms of engine CPU each per flush, whatever the flush's size
    (most of the worker's CPU at low rates). A key is now written when it is new to this
    process, when its `last_seen` is `refresh_ms` or more ahead of what was written, or when it
    would change what the readers resolve: an endpoint's name is its newest non-empty name
    (`query_api.entities`), so a name is written whenever it is not the endpoint's latest
    written name (a rename back to an earlier name included); likewise an autogroup's endpoint.
    So `last_seen` trails the newest event by less than `refresh_ms`, and names and owners
    resolve as without the cache. (One bounded exception: when an endpoint's partition moved
    to another worker and back within `refresh_ms`, a rename written by the other worker is
    not known here, so a rename back may wait up to `refresh_ms` to be written.)

    `skip` runs on the decode thread when a batch's tables are built; `written` after the
    batch's insert succeeded (a batch built before then writes its rows again: harmless, the
    tables are ReplacingMergeTree). Single dict operations only: safe across the two threads.
    """

    def __init__(self, refresh_ms: int = 60_000) -> None:
        self.refresh_ms = refresh_ms
        self._seen: dict[EndpointKey | AutogroupKey, int] = {}
        self._name: dict[tuple[str, int], str] = {}      # (tenant, endpoint) -> latest name
        self._owner: dict[tuple[str, int], int] = {}     # (tenant, autogroup) -> endpoint

    def _fresh(self, key: EndpointKey | AutogroupKey, ts: int) -> bool:
        written = self._seen.get(key)
        return written is not None and ts - written < self.refresh_ms

    def endpoints(self, keys: dict[EndpointKey, int]) -> dict[EndpointKey, int]:
        """The endpoint rows of a batch that must be written."""
        return {k: ts for k, ts in keys.items()
                if not (self._fresh(k, ts) and (not k[2] or self._name.get(k[:2]) == k[2]))}

    def autogroups(self, keys: dict[AutogroupKey, int]) -> dict[AutogroupKey, int]:
        """The autogroup rows of a batch that must be written."""
        return {k: ts for k, ts in keys.items()
                if not (self._fresh(k, ts) and self._owner.get(k[:2]) == k[2])}

    def written(self, endpoints: dict[EndpointKey, int],
                autogroups: dict[AutogroupKey, int]) -> None:
        """Record rows ClickHouse accepted."""
        for ek, ts in sorted(endpoints.items(), key=lambda kv: kv[1]):
            if self._seen.get(ek, -1) < ts:
                self._seen[ek] = ts
            if ek[2] and self._seen.get(self._latest_name_key(ek), -1) <= ts:
                self._name[ek[:2]] = ek[2]
        for ak, ts in sorted(autogroups.items(), key=lambda kv: kv[1]):
            if self._seen.get(ak, -1) < ts:
                self._seen[ak] = ts
            if self._seen.get(self._owner_key(ak), -1) <= ts:
                self._owner[ak[:2]] = ak[2]

    def _latest_name_key(self, key: EndpointKey) -> EndpointKey:
        name = self._name.get(key[:2])
        return key if name is None else (key[0], key[1], name)

    def _owner_key(self, key: AutogroupKey) -> AutogroupKey:
        ep = self._owner.get(key[:2])
        return key if ep is None else (key[0], key[1], ep)


class SinkBatch:
    """Rows for one flush, per table. Append messages, then read `tables()`.

    `events` counts the valid events added; `raw_rows(table)` gives a table's rows as tuples
    in column order (for tests and diagnostics)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self._columns: dict[str, tuple[str, ...]] = dict(TABLE_COLUMNS)
        #: `requests_raw`, the hot table, built in Native encoding (see `_append_requests`).
        self._requests = NativeColumns(list(zip(TABLE_COLUMNS["requests_raw"],
                                                REQUESTS_RAW_TYPES, strict=True)))
        self._lowcard = StringEncoder()
        self._endpoints: dict[tuple[str, int, str], int] = {}
        self._autogroups: dict[tuple[str, int, int], int] = {}
        self.registry_rows: tuple[dict[EndpointKey, int], dict[AutogroupKey, int]] = ({}, {})
        self.events = 0

    def __len__(self) -> int:
        return self.events

    def add_requests(self, partition: int, offset: int,
                     events: Iterable[tuple[int, dict[str, Any]]]) -> None:
        """Request events as dicts (the Python validation path): `(index, event)` pairs."""
        pairs = list(events)
        if not pairs:
            return
        es = [e for _, e in pairs]
        self._append_requests(
            partition, offset, [i for i, _ in pairs], [e["ts"] for e in es],
            [e["tenant"] for e in es], [e["endpoint_id"] for e in es],
            [e["endpoint"] for e in es], [e["autogroup_id"] for e in es],
            [e["worker_id"] for e in es], [e.get("id", "") for e in es],
            [e["status"] for e in es], [e["error_kind"] for e in es],
            [e["latency_ms"] for e in es], [e["queue_ms"] for e in es],
            [e["work_units"] for e in es], [e["tokens_in"] for e in es],
            [e["tokens_out"] for e in es], [e["cold_start"] for e in es],
            [e["cold_start_ms"] for e in es], [e["gpu_seconds"] for e in es],
            [e["bytes_out"] for e in es], [e.get("bytes_in", 0) for e in es],
            [e.get("cache", "") for e in es])

    def add_request_structs(self, partition: int, offset: int, events: Sequence[Any],
                            ts_ms: list[int]) -> None:
        """A whole envelope of request events as decoded structs (`schemas.fast`, the
        columnar fast path), with their event times already normalised to ms. An absent `id`
        is `msgspec.UNSET`."""
        ids: list[Any] = [e.id for e in events]
        if ids.count(UNSET) == len(ids):
            ids = [""] * len(ids)
        elif UNSET in ids:
            ids = [x if x.__class__ is str else "" for x in ids]
        self._append_requests(
            partition, offset, range(len(events)), ts_ms,
            [e.tenant for e in events], [e.endpoint_id for e in events],
            [e.endpoint for e in events], [e.autogroup_id for e in events],
            [e.worker_id for e in events], ids, [e.status for e in events],
            [e.error_kind for e in events], [e.latency_ms for e in events],
            [e.queue_ms for e in events], [e.work_units for e in events],
            [e.tokens_in for e in events], [e.tokens_out for e in events],
            [e.cold_start for e in events], [e.cold_start_ms for e in events],
            [e.gpu_seconds for e in events], [e.bytes_out for e in events],
            [e.bytes_in for e in events], [e.cache for e in events])

    def _append_requests(self, partition: int, offset: int, index: Iterable[int],
                         ts: list[int], tenant: list[str], ep: list[int], name: list[str],
                         ag: list[int], worker: list[int], ids: list[str], status: list[int],
                         kind: list[str], latency: list[float], queue: list[float],
                         work: list[float], tokens_in: list[int], tokens_out: list[int],
                         cold: list[bool], cold_ms: list[float], gpu: list[float],
                         bytes_out: list[int], bytes_in: list[int], cache: list[str]) -> None:
        # Hot path (every request event): one message's columns go into the Native buffers
        # whole, while their values are fresh. The rollups are ClickHouse's job.
        n = len(ts)
        kind = list(map(classify, status, kind))
        cols = self._requests
        # Every conversion first: an out-of-range value raises before any buffer grows.
        chunks = (
            self._lowcard.many(tenant), array("Q", ep), array("Q", ag), array("Q", worker),
            array("q", ts), b"\0" * n if ids.count("") == n else b"".join(map(string_bytes, ids)),
            array("H", status), bytes([not k for k in kind]), self._lowcard.many(kind),
            array("d", latency), array("d", queue), array("d", work), array("I", tokens_in),
            array("I", tokens_out), bytes(cold), array("d", cold_ms), array("d", gpu),
            array("Q", bytes_out), array("Q", bytes_in), self._lowcard.many(cache),
            array("H", (partition,)) * n, array("Q", (offset,)) * n,
            array("I", index))
        for buf, chunk in zip(cols.buffers, chunks, strict=True):
            # each buffer and its chunk share a type (array typecode or bytearray); mypy sees
            # only the union of the column types
            buf += chunk  # type: ignore[operator]
        cols.added(n)
        self.events += n
        self._register_many(tenant, ep, name, ag, ts)

    def _register_many(self, tenant: list[str], ep: list[int], name: list[str],
                       ag: list[int], ts: list[int]) -> None:
        """`_register` for one message's events: per key, the latest event time."""
        n, latest = len(ts), max(ts)
        in_order = ts == sorted(ts)
        t0, e0 = tenant[0], ep[0]
        one_endpoint = tenant.count(t0) == n and ep.count(e0) == n
        if one_endpoint and name.count(name[0]) == n:
            endpoints: dict[Any, int] = {(t0, e0, name[0]): latest}
        else:
            endpoints = _latest(zip(tenant, ep, name, strict=True), ts, in_order)
        if one_endpoint and ag.count(ag[0]) == n:
            autogroups: dict[Any, int] = {(t0, ag[0], e0): latest}
        elif one_endpoint:  # the common mixed case: one endpoint, several autogroups
            autogroups = {(t0, a, e0): at for a, at in _latest(ag, ts, in_order).items()}
        else:
            autogroups = _latest(zip(tenant, ag, ep, strict=True), ts, in_order)
        _merge_latest(self._endpoints, endpoints)
        _merge_latest(self._autogroups, autogroups)

    def add_heartbeats(self, partition: int, offset: int,
                       events: Iterable[tuple[int, dict[str, Any]]]) -> None:
        raw = self.rows["heartbeats_raw"]
        for index, e in events:
            raw.append((e["tenant"], e["endpoint_id"], e["autogroup_id"], e["id"], e["ts"],
                        e["loadtime"], e["cur_load"], e["new_load"], e["rej_load"],
                        e["max_perf"], e["cur_perf"],
                        e["cur_capacity"], e["max_capacity"], e["num_requests_working"],
                        e["num_requests_recieved"], e["error_msg"], e["gpu_util"],
                        e["gpu_mem_util"], e["cpu_util"], e.get("gpu_temp_c"),
                        e.get("gpu_mem_total_bytes"), partition, offset, index))
            self._register(e["tenant"], e["endpoint_id"], e["autogroup_id"], e["endpoint"],
                           e["ts"])
            self.events += 1

    def add_dead_letter(self, topic: str, partition: int, offset: int, index: int | None,
                        reason: str, payload: bytes) -> None:
        self.rows["dead_letters"].append(
            (topic, partition, offset, -1 if index is None else index, reason,
             payload[:65536].decode("utf-8", "replace")))

    def _register(self, tenant: str, ep: int, ag: int, name: str, ts: int) -> None:
        key = (tenant, ep, name)
        if self._endpoints.get(key, -1) < ts:
            self._endpoints[key] = ts
        gkey = (tenant, ag, ep)
        if self._autogroups.get(gkey, -1) < ts:
            self._autogroups[gkey] = ts

    def raw_rows(self, table: str) -> list[tuple[Any, ...]]:
        if table == "requests_raw":
            return list(zip(*self._requests.columns(), strict=True))
        return list(self.rows.get(table, ()))

    def checkpoint(self) -> Checkpoint:
        """A mark to `rollback` to: drops whatever a failing builder half-appended."""
        return ({t: len(r) for t, r in self.rows.items()}, self._requests.mark(), self.events,
                dict(self._endpoints), dict(self._autogroups))

    def rollback(self, mark: Checkpoint) -> None:
        lengths, requests, events, endpoints, autogroups = mark
        for table, rows in self.rows.items():
            del rows[lengths.get(table, 0):]
        self._requests.truncate(requests)
        self.events, self._endpoints, self._autogroups = events, endpoints, autogroups

    def rows_for(self, table: str, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
        """The row list of `table` (rows are tuples in `columns` order); for kinds whose tables
        are declared in their own modules."""
        known = self._columns.setdefault(table, columns)
        if known != columns:
            raise ValueError(f"table {table}: columns {columns} differ from {known}")
        return self.rows[table]

    def tables(self, registry: RegistryCache | None = None) -> list[Table]:
        """(table, column names, columns or Native block) for every table with rows, in insert
        order: raw tables (`*_raw`) last. With `registry`, only the registry rows it says are
        new (see `RegistryCache`). A reader that sees a batch's raw rows therefore also
        sees its registry rows and dead letters. The request rollups are written by
        ClickHouse's views within the raw insert, just after the raw rows: for a moment
        (milliseconds) a reader may see a batch's raw rows and not yet its rollups."""
        endpoints, autogroups = self._endpoints, self._autogroups
        if registry is not None:
            endpoints, autogroups = registry.endpoints(endpoints), registry.autogroups(autogroups)
        #: The registry rows of `tables()`, for `RegistryCache.written` once inserted.
        self.registry_rows = (endpoints, autogroups)
        if endpoints:
            self.rows["endpoints"] = [(t, ep, n, ts) for (t, ep, n), ts in endpoints.items()]
        if autogroups:
            self.rows["autogroups"] = [(t, ag, ep, ts) for (t, ag, ep), ts in autogroups.items()]
        out: list[Table] = []
        for table, names in self._columns.items():
            if table == "requests_raw":
                if self._requests.rows:
                    out.append((table, names, self._requests.block()))
                continue
            rows = self.rows.get(table)
            if rows:
                out.append((table, names, [list(col) for col in zip(*rows, strict=True)]))
        out.sort(key=lambda t: t[0].endswith("_raw"))  # stable: raw tables go last
        return out
