"""In-process cache of per-bucket rollup aggregates behind the endpoint metrics series. Pure:
no I/O, no clock.

A 24 h series at 1m granularity is 1,440 buckets, and between two calls a minute apart only the
newest one or two have changed. So each API process keeps, per (tenant, endpoint, rollup
table), every bucket's sums, percentiles and latency histogram as last read, together with a
**tag**: the number of distinct source rows that read merged (a compacted row's `src_rows`, or
the `count()` of the bucket's rows under FINAL). A call reads the rows-written counters of its
range (`<table>_rows`, 007_rollup_row_counts.sql) and re-reads only the buckets whose counter
differs from their tag.

Why a matching tag means the cached bucket is exact (the argument of `metrics_store._split`,
applied to the cache): source rows are only ever added and a merge only drops a duplicate of a
key that stays, so rows written ≥ distinct keys ever written ≥ keys in any read. A counter equal
to the tag therefore leaves no room for a row written after the read, nor for a duplicate whose
values FINAL might pick differently. A redelivered message's duplicate keeps its buckets unequal
for good: they are re-read (with FINAL) on every call, exact and only slower. The tag comes from
the same read as the data, so a counter that becomes visible before or after the rows of the
same insert only costs a re-read.

The window histogram is kept as a dense array summed over the buckets in the last window;
a call subtracts the buckets that left or changed and adds the new ones, so its cost follows
what changed, not the window's length.

Memory: ~2.5 KB per bucket (its histogram) plus 512 KiB per scope for the dense sum; bounded by
`max_buckets` and `max_scopes` (least recently used scopes go first).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.storage import sketch
from query_api.endpoint_metrics.sections import Sums

__all__ = ["Bucket", "ScopeSeries", "SeriesCache", "Window"]

#: Sketch indexes are Int16; a bucket's dense slot is the same 16 bits read as unsigned
#: (a bijection onto 0..65535, so no arithmetic and no copy of what ClickHouse sent).
SLOTS = 1 << 16


class Bucket:
    """One bucket as read: `tag` distinct source rows, the `Sums.from_row` row, the point's
    Sums, and its latency histogram as dense slots (the sketch indexes' bits as uint16; distinct
    within a bucket) and counts. Never changed once made (a plain slotted class: a cold read
    makes 1,440 of them)."""

    __slots__ = ("counts", "row", "slots", "sums", "tag")

    def __init__(self, tag: int, row: tuple[Any, ...], slots: npt.NDArray[np.uint16],
                 counts: npt.NDArray[np.uint64]) -> None:
        self.tag = tag
        self.row = row
        self.sums = Sums.from_row(row)
        self.slots = slots
        self.counts = counts


@dataclass(frozen=True, slots=True)
class Window:
    """What `ScopeSeries.window` returns: every point's Sums (empty ones included), the window's
    total with its percentiles, and the window's latency histogram."""

    points: dict[int, Sums]
    total: Sums
    hist: dict[int, int]


class ScopeSeries:
    """The cached buckets of one (tenant, endpoint, rollup table)."""

    def __init__(self) -> None:
        self.buckets: dict[int, Bucket] = {}
        self._dense: npt.NDArray[np.uint64] | None = None
        self._summed: dict[int, Bucket] = {}
        #: The longest window asked of this scope: older buckets than one more of it are dropped.
        self.span = 0

    def missing(self, counters: Mapping[int, int]) -> list[int]:
        """Buckets with rows (counter > 0) whose cached tag is absent or differs."""
        cached = self.buckets
        out = []
        for b, n in counters.items():
            c = cached.get(b)
            if n and (c is None or c.tag != n):
                out.append(b)
        return out

    def put(self, read: Mapping[int, Bucket]) -> None:
        self.buckets.update(read)

    def window(self, start: int, end: int, step: int, with_rows: Iterable[int]) -> Window:
        """The points of [start, end) from the cached buckets among `with_rows` (the range's
        buckets that have rows), and drop the
        buckets older than `start` minus the longest window asked of this scope (so windows of
        several lengths, e.g. a 7 d series and the 48 h trends on the 1h table, keep theirs)."""
        cached = self.buckets
        wanted = {b: c for b in sorted(with_rows) if (c := cached.get(b)) is not None}
        empty = Sums()
        points = {t: empty for t in range(start, end, step)}
        for b, c in wanted.items():
            points[b] = c.sums
        total = Sums.total_of([c.row for c in wanted.values()])
        hist = self._hist(wanted)
        total.p50, total.p95, total.p99 = sketch.quantiles(hist, (0.5, 0.95, 0.99))
        self.span = max(self.span, end - start)
        horizon = start - self.span
        for b in [b for b in cached if b < horizon]:
            del cached[b]
        return Window(points, total, hist)

    def _hist(self, wanted: dict[int, Bucket]) -> dict[int, int]:
        summed = self._summed
        dropped = [b for b, c in summed.items() if wanted.get(b) is not c]
        added = [b for b, c in wanted.items() if summed.get(b) is not c]
        dense = self._dense
        if dense is None or len(dropped) + len(added) > len(wanted) // 2 + 8:
            dense = np.zeros(SLOTS, np.uint64)
            if wanted:
                np.add.at(dense, np.concatenate([c.slots for c in wanted.values()]),
                          np.concatenate([c.counts for c in wanted.values()]))
            self._summed = dict(wanted)
        else:  # a bucket's slots are distinct, so fancy-index -= / += is exact
            for b in dropped:
                c = summed.pop(b)
                dense[c.slots] -= c.counts
            for b in added:
                c = wanted[b]
                dense[c.slots] += c.counts
                summed[b] = c
        self._dense = dense
        nz = np.flatnonzero(dense)
        keys = nz.astype(np.uint16).view(np.int16)
        return dict(zip(keys.tolist(), dense[nz].tolist(), strict=True))

    def __len__(self) -> int:
        return len(self.buckets)


class SeriesCache:
    """`ScopeSeries` per key, least recently used evicted past `max_scopes` scopes or
    `max_buckets` buckets in all. `max_buckets` = 0 disables caching: every call gets a fresh,
    unkept `ScopeSeries` (and so reads every bucket)."""

    def __init__(self, max_buckets: int, max_scopes: int = 64) -> None:
        self.max_buckets = max_buckets
        self.max_scopes = max_scopes
        self._scopes: OrderedDict[Hashable, ScopeSeries] = OrderedDict()

    def scope(self, key: Hashable) -> ScopeSeries:
        if self.max_buckets <= 0:
            return ScopeSeries()
        s = self._scopes.get(key)
        if s is None:
            s = self._scopes[key] = ScopeSeries()
        self._scopes.move_to_end(key)
        return s

    def trim(self) -> None:
        """Evict least recently used scopes until within both bounds (the newest stays)."""
        scopes = self._scopes
        while len(scopes) > 1 and (len(scopes) > self.max_scopes
                                   or sum(map(len, scopes.values())) > self.max_buckets):
            scopes.popitem(last=False)

    def clear(self) -> None:
        self._scopes.clear()

    @property
    def buckets(self) -> int:
        return sum(map(len, self._scopes.values()))
