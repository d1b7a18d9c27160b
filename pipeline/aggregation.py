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

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

__all__ = ["ROLLUP_FIELDS", "TABLE_COLUMNS", "Checkpoint", "SinkBatch", "classify"]

ROLLUP_FIELDS = (
    "requests", "successes", "failures", "err_client", "err_server", "err_timeout",
    "err_resource", "err_other", "work_units", "tokens_in", "tokens_out", "latency_sum",
    "latency_min", "latency_max", "latency_hist", "queue_ms_sum", "cold_starts",
    "cold_start_ms_sum", "gpu_seconds", "bytes_out",
)
_ROLLUP_KEY = ("tenant", "endpoint_id", "autogroup_id", "bucket", "src_partition", "src_offset")

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "requests_raw": (
        "tenant", "endpoint_id", "autogroup_id", "worker_id", "ts", "event_id", "status",
        "success", "error_kind", "latency_ms", "queue_ms", "work_units", "tokens_in",
        "tokens_out", "cold_start", "cold_start_ms", "gpu_seconds", "bytes_out",
        "src_partition", "src_offset", "src_index",
    ),
    "heartbeats_raw": (
        "tenant", "endpoint_id", "autogroup_id", "worker_id", "ts", "loadtime", "cur_load",
        "max_perf", "cur_perf", "cur_capacity", "max_capacity", "num_requests_working",
        "num_requests_recieved", "error_msg", "gpu_util", "gpu_mem_util", "cpu_util",
        "src_partition", "src_offset", "src_index",
    ),
    "endpoints": ("tenant", "endpoint_id", "endpoint_name", "last_seen"),
    "autogroups": ("tenant", "autogroup_id", "endpoint_id", "last_seen"),
    "dead_letters": ("topic", "src_partition", "src_offset", "src_index", "reason", "payload"),
}

#: (row counts per table, column lengths per directly built table, events, endpoint registry,
#: autogroup registry) at a point in time.
Checkpoint = tuple[dict[str, int], dict[str, int], int, dict[tuple[str, int, str], int],
                   dict[tuple[str, int, int], int]]

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


class SinkBatch:
    """Rows for one flush, per table. Append messages, then read `tables()`.

    `events` counts the valid events added; `raw_rows(table)` gives a table's rows as tuples
    in column order (for tests and diagnostics)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self._columns: dict[str, tuple[str, ...]] = dict(TABLE_COLUMNS)
        #: Tables built column by column (hot paths), in `TABLE_COLUMNS` order.
        self._direct: dict[str, list[list[Any]]] = {}
        self._endpoints: dict[tuple[str, int, str], int] = {}
        self._autogroups: dict[tuple[str, int, int], int] = {}
        self.events = 0

    def __len__(self) -> int:
        return self.events

    def add_requests(self, partition: int, offset: int,
                     events: Iterable[tuple[int, dict[str, Any]]]) -> None:
        # Hot path (every request event): rows go straight into per-column lists, and locals
        # stand in for attribute and global lookups. The rollups are ClickHouse's job.
        cols = self._raw_columns()
        (c_tenant, c_ep, c_ag, c_worker, c_ts, c_id, c_status, c_success, c_kind, c_lat,
         c_queue, c_work, c_tin, c_tout, c_cold, c_cold_ms, c_gpu, c_bytes, c_part, c_off,
         c_index) = cols
        endpoints, autogroups = self._endpoints, self._autogroups
        n = 0
        for index, e in events:
            tenant, ep, ag, ts = e["tenant"], e["endpoint_id"], e["autogroup_id"], e["ts"]
            status, kind = e["status"], e["error_kind"]
            if not kind and status >= 400:
                kind = "client" if status < 500 else "server"
            c_tenant.append(tenant)
            c_ep.append(ep)
            c_ag.append(ag)
            c_worker.append(e["worker_id"])
            c_ts.append(ts)
            c_id.append(e.get("id", ""))
            c_status.append(status)
            c_success.append(not kind)
            c_kind.append(kind)
            c_lat.append(e["latency_ms"])
            c_queue.append(e["queue_ms"])
            c_work.append(e["work_units"])
            c_tin.append(e["tokens_in"])
            c_tout.append(e["tokens_out"])
            c_cold.append(e["cold_start"])
            c_cold_ms.append(e["cold_start_ms"])
            c_gpu.append(e["gpu_seconds"])
            c_bytes.append(e["bytes_out"])
            c_index.append(index)
            ekey = (tenant, ep, e["endpoint"])
            if endpoints.get(ekey, -1) < ts:
                endpoints[ekey] = ts
            gkey = (tenant, ag, ep)
            if autogroups.get(gkey, -1) < ts:
                autogroups[gkey] = ts
            n += 1
        c_part.extend([partition] * n)
        c_off.extend([offset] * n)
        self.events += n

    def add_heartbeats(self, partition: int, offset: int,
                       events: Iterable[tuple[int, dict[str, Any]]]) -> None:
        raw = self.rows["heartbeats_raw"]
        for index, e in events:
            raw.append((e["tenant"], e["endpoint_id"], e["autogroup_id"], e["id"], e["ts"],
                        e["loadtime"], e["cur_load"], e["max_perf"], e["cur_perf"],
                        e["cur_capacity"], e["max_capacity"], e["num_requests_working"],
                        e["num_requests_recieved"], e["error_msg"], e["gpu_util"],
                        e["gpu_mem_util"], e["cpu_util"], partition, offset, index))
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
        direct = self._direct.get(table)
        if direct is not None:
            return list(zip(*direct, strict=True))
        return list(self.rows.get(table, ()))

    def _raw_columns(self) -> list[list[Any]]:
        cols = self._direct.get("requests_raw")
        if cols is None:
            cols = self._direct["requests_raw"] = [[] for _ in TABLE_COLUMNS["requests_raw"]]
        return cols

    def checkpoint(self) -> Checkpoint:
        """A mark to `rollback` to: drops whatever a failing builder half-appended."""
        return ({t: len(r) for t, r in self.rows.items()},
                {t: len(cols[0]) for t, cols in self._direct.items()}, self.events,
                dict(self._endpoints), dict(self._autogroups))

    def rollback(self, mark: Checkpoint) -> None:
        lengths, direct, events, endpoints, autogroups = mark
        for table, rows in self.rows.items():
            del rows[lengths.get(table, 0):]
        for table, cols in self._direct.items():
            for col in cols:
                del col[direct.get(table, 0):]
        self.events, self._endpoints, self._autogroups = events, endpoints, autogroups

    def rows_for(self, table: str, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
        """The row list of `table` (rows are tuples in `columns` order); for kinds whose tables
        are declared in their own modules."""
        known = self._columns.setdefault(table, columns)
        if known != columns:
            raise ValueError(f"table {table}: columns {columns} differ from {known}")
        return self.rows[table]

    def tables(self) -> list[tuple[str, tuple[str, ...], list[list[Any]]]]:
        """(table, column names, columns) for every table with rows, in insert order: raw
        tables (`*_raw`) last. A reader that sees a batch's raw rows therefore also sees its
        rollups, registry rows and dead letters."""
        if self._endpoints:
            self.rows["endpoints"] = [(t, ep, n, ts)
                                      for (t, ep, n), ts in self._endpoints.items()]
        if self._autogroups:
            self.rows["autogroups"] = [(t, ag, ep, ts)
                                       for (t, ag, ep), ts in self._autogroups.items()]
        out = []
        for table, names in self._columns.items():
            direct = self._direct.get(table)
            if direct is not None and direct[0]:
                out.append((table, names, direct))
                continue
            rows = self.rows.get(table)
            if rows:
                out.append((table, names, [list(col) for col in zip(*rows, strict=True)]))
        out.sort(key=lambda t: t[0].endswith("_raw"))  # stable: raw tables go last
        return out
