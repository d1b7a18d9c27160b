"""Requests stored for an endpoint over its whole history (the stats API's `totreqs`), without
reading every per-message rollup row of that history on every call.

`requests_1h` holds one row per (message, autogroup, hour): ~80,000 rows a day for an endpoint
taking 115 events/s, and reading them all with FINAL cost ~9 ms per day of history per call
(bench/results.md, 2026-12-02), ~1 s of engine CPU per uncached call after three months.

So each API process keeps, per endpoint, every UTC day's request count as last read, with a
**tag**: the number of distinct 1h rows that read merged (`count()` under FINAL). A call reads
the rows-written counters per day (`requests_1h_rows`, 007_rollup_row_counts.sql; a few hundred
rows) and re-reads, with FINAL, only the days whose counter differs from their tag: the current
day, and days that took late or redelivered rows. Why a matching tag keeps a day exact is the
argument of `query_api.endpoint_metrics.series_cache`: rows are only ever added and a merge only
drops a duplicate of a key that stays, so rows written ≥ distinct keys ≥ the keys of any read,
and a counter equal to the tag leaves no room for a row written after the read. A day with a
redelivered duplicate never matches again: it is re-read on every call (exact; one day's rows).

Days near the retention horizon are always re-read and never kept: the TTL deletes their rows
and their counters in separate merges, so a counter may vanish before its rows do. An autogroup
scope has no counters of its own (they are per endpoint): its total is read as before.
"""

from __future__ import annotations

from collections import OrderedDict

from pipeline.storage.clickhouse import AsyncStore
from query_api.entities import Scope
from query_api.entities_store import scope_params, scope_where

__all__ = ["DAY", "RequestTotals", "total_requests"]

DAY = 86400
#: ClickHouse merges FINAL rows within each partition only (requests_1h is partitioned by the
#: year of its sorting-key column `bucket`, so this is FINAL over the table; see
#: `query_api.endpoint_metrics.store._FINAL`).
_FINAL = " SETTINGS do_not_merge_across_partitions_select_final = 1"
#: Days within this margin of the retention horizon are read on every call, not kept.
_EDGE_DAYS = 2


class RequestTotals:
    """Per (tenant, endpoint): day start → (tag, requests). Bounded by `max_scopes` endpoints,
    least recently used first out (~150 bytes a day: ~60 KB for 400 days of history)."""

    def __init__(self, max_scopes: int = 1024) -> None:
        self.max_scopes = max_scopes
        self._scopes: OrderedDict[tuple[str, int], dict[int, tuple[int, int]]] = OrderedDict()

    def days(self, tenant: str, endpoint_id: int) -> dict[int, tuple[int, int]]:
        key = (tenant, endpoint_id)
        days = self._scopes.get(key)
        if days is None:
            days = self._scopes[key] = {}
            while len(self._scopes) > self.max_scopes:
                self._scopes.popitem(last=False)
        self._scopes.move_to_end(key)
        return days

    def clear(self) -> None:
        self._scopes.clear()


def _day_ranges(days: list[int]) -> str:
    runs: list[tuple[int, int]] = []
    for d in sorted(days):
        if runs and runs[-1][1] == d:
            runs[-1] = (runs[-1][0], d + DAY)
        else:
            runs.append((d, d + DAY))
    return "(" + " OR ".join(f"(bucket >= toDateTime({lo}, 'UTC') AND bucket < "
                             f"toDateTime({hi}, 'UTC'))" for lo, hi in runs) + ")"


async def total_requests(store: AsyncStore, scope: Scope, totals: RequestTotals | None, *,
                         before_day: int | None, now: float, retention_days: int | None) -> int:
    """Requests in the 1h rollup of `scope` with a bucket before `before_day` (a UTC day start;
    None: every bucket), exact as `SELECT sum(requests) FROM requests_1h FINAL` over that range.
    `totals` None (or an autogroup scope) reads that sum directly."""
    db, where, params = store.database, scope_where(scope), scope_params(scope)
    bound = "" if before_day is None else f" AND bucket < toDateTime({before_day}, 'UTC')"
    if totals is None or scope.autogroup_id is not None:
        rows = await store.rows(
            f"SELECT sum(requests) FROM {db}.requests_1h FINAL WHERE {where}{bound}{_FINAL}",
            params)
        return int(rows[0][0] or 0)
    day_expr = "toUnixTimestamp(toStartOfDay(bucket, 'UTC'))"
    counters = {int(d): int(n) for d, n in await store.rows(
        f"SELECT {day_expr} AS d, sum(rows) FROM {db}.requests_1h_rows "
        f"WHERE {where}{bound} GROUP BY d", params)}
    edge = (None if retention_days is None
            else (int(now) // DAY - retention_days + _EDGE_DAYS) * DAY)
    kept = totals.days(scope.tenant, scope.endpoint_id)
    known = kept if before_day is None else {d: v for d, v in kept.items() if d < before_day}
    stale = [d for d, n in counters.items()
             if n and (edge is None or d >= edge) and known.get(d, (None,))[0] != n]
    # kept days without a counter now (expired, or a counter merged away at the edge) go
    gone = [d for d in known if d not in counters or (edge is not None and d < edge)]
    for d in gone:
        kept.pop(d, None)
    conds = []
    if stale:
        conds.append(_day_ranges(stale))
    if edge is not None:
        conds.append(f"bucket < toDateTime({edge}, 'UTC')")
    read: dict[int, tuple[int, int]] = {}
    if conds:
        rows = await store.rows(
            f"SELECT {day_expr} AS d, count(), sum(requests) FROM {db}.requests_1h FINAL "
            f"WHERE {where}{bound} AND ({' OR '.join(conds)}) GROUP BY d{_FINAL}", params)
        read = {int(d): (int(n), int(r)) for d, n, r in rows}
    total = 0
    for d in stale:
        got = read.get(d)
        if got is None:  # its counter became visible before its rows: nothing to keep yet
            kept.pop(d, None)
        else:
            kept[d] = got
            total += got[1]
    fresh = set(stale)
    total += sum(kept[d][1] for d, n in counters.items()
                 if n and d not in fresh and (edge is None or d >= edge))
    # rows beyond the retention edge count while they are there, whatever their counters say
    total += sum(r for d, (_, r) in read.items() if edge is not None and d < edge)
    return total
