"""Turn decoded events into ClickHouse rows: raw rows and per-message partial aggregates. Pure.

Every row carries its Kafka source position, and a message's rows depend only on the message's
content and position. A redelivered message therefore yields identical rows with identical keys,
which the ReplacingMergeTree tables collapse: counts stay exact under redelivery (see
schemas/clickhouse/001_requests_heartbeats.sql).

Rollups are tumbling buckets of 1 s, 1 min and 1 h per (tenant, endpoint, autogroup), computed
per message. A bucket `b` covers event times [b, b + width).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from pipeline import sketch

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
    "requests_1s": _ROLLUP_KEY + ROLLUP_FIELDS,
    "requests_1m": _ROLLUP_KEY + ROLLUP_FIELDS,
    "requests_1h": _ROLLUP_KEY + ROLLUP_FIELDS,
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

_RESOLUTIONS = (("requests_1s", 1), ("requests_1m", 60), ("requests_1h", 3600))

# Index of each additive field in an accumulator list (latency_min/max/hist handled apart).
_I = {name: i for i, name in enumerate(ROLLUP_FIELDS)}
_MIN, _MAX, _HIST = _I["latency_min"], _I["latency_max"], _I["latency_hist"]


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


_ERR_FIELD = {"client": _I["err_client"], "server": _I["err_server"],
              "timeout": _I["err_timeout"], "resource_exhausted": _I["err_resource"],
              "other": _I["err_other"]}


def _new_acc() -> list[Any]:
    acc: list[Any] = [0] * len(ROLLUP_FIELDS)
    acc[_MIN] = float("inf")
    acc[_MAX] = float("-inf")
    acc[_HIST] = {}
    return acc


def _merge_acc(into: list[Any], other: list[Any]) -> None:
    for i, v in enumerate(other):
        if i == _MIN:
            into[i] = min(into[i], v)
        elif i == _MAX:
            into[i] = max(into[i], v)
        elif i == _HIST:
            h = into[i]
            for k, c in v.items():
                h[k] = h.get(k, 0) + c
        else:
            into[i] += v


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
        # Hot path (every request event): raw rows go straight into per-column lists, and
        # locals stand in for attribute and global lookups.
        cols = self._raw_columns()
        (c_tenant, c_ep, c_ag, c_worker, c_ts, c_id, c_status, c_success, c_kind, c_lat,
         c_queue, c_work, c_tin, c_tout, c_cold, c_cold_ms, c_gpu, c_bytes, c_part, c_off,
         c_index) = cols
        secs: dict[tuple[str, int, int, int], list[Any]] = {}
        endpoints, autogroups = self._endpoints, self._autogroups
        bucket_of = sketch.bucket_of
        err_field = _ERR_FIELD
        n = 0
        for index, e in events:
            tenant, ep, ag, ts = e["tenant"], e["endpoint_id"], e["autogroup_id"], e["ts"]
            status, lat, kind = e["status"], e["latency_ms"], e["error_kind"]
            if not kind and status >= 400:
                kind = "client" if status < 500 else "server"
            cold, work = e["cold_start"], e["work_units"]
            tin, tout = e["tokens_in"], e["tokens_out"]
            queue, gpu, nbytes, cold_ms = (e["queue_ms"], e["gpu_seconds"], e["bytes_out"],
                                           e["cold_start_ms"])
            c_tenant.append(tenant)
            c_ep.append(ep)
            c_ag.append(ag)
            c_worker.append(e["worker_id"])
            c_ts.append(ts)
            c_id.append(e.get("id", ""))
            c_status.append(status)
            c_success.append(not kind)
            c_kind.append(kind)
            c_lat.append(lat)
            c_queue.append(queue)
            c_work.append(work)
            c_tin.append(tin)
            c_tout.append(tout)
            c_cold.append(cold)
            c_cold_ms.append(cold_ms)
            c_gpu.append(gpu)
            c_bytes.append(nbytes)
            c_index.append(index)
            key = (tenant, ep, ag, ts // 1000)
            acc = secs.get(key)
            if acc is None:
                acc = secs[key] = _new_acc()
            acc[0] += 1
            if kind:
                acc[2] += 1
                acc[err_field[kind]] += 1
            else:
                acc[1] += 1
            acc[8] += work
            acc[9] += tin
            acc[10] += tout
            acc[11] += lat
            if lat < acc[_MIN]:
                acc[_MIN] = lat
            if lat > acc[_MAX]:
                acc[_MAX] = lat
            h = acc[_HIST]
            b = bucket_of(lat)
            h[b] = h.get(b, 0) + 1
            acc[15] += queue
            if cold:
                acc[16] += 1
                acc[17] += cold_ms
            acc[18] += gpu
            acc[19] += nbytes
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
        for table, width in _RESOLUTIONS:
            if width == 1:
                grouped = secs
            else:
                grouped = {}
                for (tenant, ep, ag, sec), acc in secs.items():
                    key = (tenant, ep, ag, sec - sec % width)
                    into = grouped.get(key)
                    if into is None:
                        grouped[key] = [*acc[:_HIST], dict(acc[_HIST]), *acc[_HIST + 1:]]
                    else:
                        _merge_acc(into, acc)
            out = self.rows[table]
            for (tenant, ep, ag, bucket), acc in grouped.items():
                out.append((tenant, ep, ag, bucket, partition, offset, *acc))

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
